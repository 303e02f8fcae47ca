"""Token geometry on the REAL architectures' grids (24x24 LLaVA, 448 px / 16x16 InternVL tiles)
and on the tiny models', for odd image sizes and aspect ratios."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import CLIPVisionConfig, InternVLConfig, LlavaConfig

from vlmloc.geometry import mask_grids, object_token_indices, pad_grid
from vlmloc.models.internvl import InternVLAdapter, closest_tile_grid
from vlmloc.models.llava import LlavaAdapter

PRE = {
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}
REAL = {
    "llava": LlavaAdapter(
        SimpleNamespace(
            config=LlavaConfig(vision_config=CLIPVisionConfig(image_size=336, patch_size=14))
        ),
        None,
        PRE,
    ),
    "internvl": InternVLAdapter(SimpleNamespace(config=InternVLConfig()), None, PRE, max_tiles=6),
}


def test_real_grids():
    lay = REAL["llava"].layout(640, 480)
    assert lay.n_tokens == 576 and lay.views[0].rows == 24
    assert REAL["llava"].pad_colour == (122, 116, 104)
    lay = REAL["internvl"].layout(1000, 500)  # aspect 2 -> 2x1 tiles + thumbnail
    assert [v.name for v in lay.views] == ["tile_0", "tile_1", "global"] and lay.n_tokens == 3 * 256
    assert lay.view("global").offset == 512 and lay.view("tile_1").region == (500, 0, 1000, 500)
    assert REAL["internvl"].layout(448, 448).n_tokens == 256  # one tile: no thumbnail


def test_tile_grid_matches_internvl_reference():
    assert closest_tile_grid(640, 480, 448, 1, 6) == (
        3,
        2,
    )  # 4:3 is closest to 3:2 among <= 6 tiles
    assert closest_tile_grid(448, 448, 448, 1, 6) == (1, 1)  # 1:1 ties 2x2; a small image keeps 1x1
    assert closest_tile_grid(1000, 1000, 448, 1, 6) == (2, 2)  # ... a large one takes 2x2
    assert closest_tile_grid(1200, 300, 448, 1, 6) == (4, 1)
    assert closest_tile_grid(300, 1200, 448, 1, 6) == (1, 4)
    assert closest_tile_grid(2000, 100, 448, 1, 6) == (6, 1)  # capped at six tiles


def test_llava_mask_example():
    """A 100x50 image padded to 100x100 (image rows 25..75); 24x24 tokens of 100/24 px."""
    mask = np.zeros((50, 100), bool)
    mask[0, 0] = True  # top-left image pixel = padded (0, 25) -> token row 6 (25/4.1667=6.0), col 0
    idx = object_token_indices(REAL["llava"].layout(100, 50), mask)
    assert list(idx) == [6 * 24 + 0]


def _full_and_random_masks(w, h, seed):
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), bool)
    x0, y0 = rng.integers(0, w), rng.integers(0, h)
    m[y0 : y0 + rng.integers(1, h), x0 : x0 + rng.integers(1, w)] = True
    return m


sizes = st.tuples(st.integers(17, 1500), st.integers(17, 1500))


@settings(max_examples=40, deadline=None)
@given(size=sizes, family=st.sampled_from(["llava", "internvl"]), seed=st.integers(0, 10_000))
def test_padding_properties(size, family, seed):
    w, h = size
    lay = REAL[family].layout(w, h)
    mask = _full_and_random_masks(w, h, seed)
    g = {p: mask_grids(lay, mask, p) for p in (-2, -1, 0, 1, 2)}
    raw = {v.name: pad_grid(g[0][v.name], 0) for v in lay.views}
    for v in lay.views:
        assert np.array_equal(g[0][v.name], raw[v.name])
        assert (g[-2][v.name] <= g[-1][v.name]).all() and (g[-1][v.name] <= g[0][v.name]).all()
        assert (g[0][v.name] <= g[1][v.name]).all() and (g[1][v.name] <= g[2][v.name]).all()
    assert g[0]["global" if family == "internvl" else "image"].any()  # the whole-image view sees it
    assert len(object_token_indices(lay, mask)) == sum(int(x.sum()) for x in g[0].values())


@settings(max_examples=30, deadline=None)
@given(size=sizes, family=st.sampled_from(["llava", "internvl"]))
def test_whole_image_mask(size, family):
    w, h = size
    lay = REAL[family].layout(w, h)
    idx = object_token_indices(lay, np.ones((h, w), bool))
    if family == "internvl" or w == h:
        assert len(idx) == lay.n_tokens  # every token of every view
    else:
        # LLaVA: tokens wholly inside the square's padding show no image pixel
        table = lay.token_table()
        inside = [
            t["token"] for t in table if t["x1"] > 0 and t["x0"] < w and t["y1"] > 0 and t["y0"] < h
        ]
        assert sorted(idx) == sorted(inside)


def test_views_restrict_indices():
    lay = REAL["internvl"].layout(900, 450)
    mask = np.zeros((450, 900), bool)
    mask[100:200, 100:200] = True  # inside tile_0 only
    assert set(object_token_indices(lay, mask, views=("local",))) < set(range(256))
    glob = object_token_indices(lay, mask, views=("global",))
    assert glob.min() >= 512 and len(glob) > 0


def test_internvl_pixel_shuffle_is_row_major(adapters):
    """Token k of a view comes from the 2x2 patch block at (k // g, k % g): checked against the
    model's own pixel_shuffle on patch features that encode their (row, col)."""
    model = adapters["internvl"].model.model
    n = 8
    rows, cols = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    feats = torch.stack([rows, cols], -1).float()[None]  # (1, n, n, 2)
    out = model.pixel_shuffle(feats, scale_factor=0.5).reshape(1, -1, 8)  # (1, 16, 2*4)
    for k in range(16):
        r, c = divmod(k, 4)
        vals = out[0, k].reshape(-1, 2)
        assert set(vals[:, 0].tolist()) == {2 * r, 2 * r + 1}
        assert set(vals[:, 1].tolist()) == {2 * c, 2 * c + 1}


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_box_format_roundtrip(adapters, family):
    a = adapters[family]
    for w, h in [(640, 480), (333, 777), (500, 500)]:
        box = (w * 0.1, h * 0.2, w * 0.7, h * 0.9)
        parsed = a.parse_box(a.format_box(box, w, h), w, h)
        assert parsed.status == "ok"
        assert np.allclose(parsed.box, box, atol=max(w, h) * 0.006)
