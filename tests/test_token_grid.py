"""Appendix Fig. 7 and integrated gradients on the token grid: the cells drawn are the geometry's,
the marked tokens are the experiment's top-k, the importances the token-ablation job stores are
the ones its IG conditions ranked, and the samples follow the documented rule."""

import numpy as np
import pandas as pd
import pytest
from test_experiment_layer import SETTINGS, _job, _samples

from vlmloc.experiments import get_experiment
from vlmloc.experiments.base import run_conditions, share_count
from vlmloc.experiments.token_ablation import top_indices
from vlmloc.experiments.token_grid import ELONGATED, grid_examples, ig_importances
from vlmloc.figures.token_grid_figures import GridExample, plane_views, plot_fig7, plot_ig_grid
from vlmloc.geometry import mask_grids, object_token_indices
from vlmloc.models import geometry_adapter

PADDINGS = (-2, -1, 0, 1, 2)


def _ellipse(w, h, cx, cy, rx, ry):
    yy, xx = np.mgrid[:h, :w]
    return ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1


def _examples(adapter):
    """A wide image (tiles for InternVL, pad bars for LLaVA), a tall one, a square one; objects
    small, across a tile border, and at the image's edge."""
    shapes = [
        (300, 100, _ellipse(300, 100, 150, 50, 60, 30)),  # across InternVL's tile borders
        (90, 200, _ellipse(90, 200, 20, 170, 9, 12)),  # small
        (128, 128, np.pad(np.ones((50, 128), bool), ((78, 0), (0, 0)))),  # touches 3 edges
    ]
    rng = np.random.default_rng(0)
    return [
        GridExample(
            f"s{i}",
            "test",
            rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
            m,
            adapter.layout(w, h),
        )
        for i, (w, h, m) in enumerate(shapes)
    ]


@pytest.fixture(scope="module")
def geometry(tiny_dirs):
    return {
        family: geometry_adapter({"family": family, "path": str(path), "dtype": "float32"})
        for family, path in tiny_dirs.items()
    }


@pytest.mark.parametrize("family", ["llava", "internvl", "qwen2_5_vl"])
def test_geometry_adapter_has_the_loaded_models_layout(geometry, adapters, family):
    """No weights loaded, the same views, regions and offsets as the model the jobs load."""
    for w, h in [(300, 100), (90, 200), (128, 128), (640, 480)]:
        assert geometry[family].layout(w, h) == adapters[family].layout(w, h), (w, h)
    assert geometry[family].model.config.model_type == adapters[family].model.config.model_type


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_fig7_draws_exactly_the_object_tokens_at_every_padding(tmp_path, geometry, family):
    examples = _examples(geometry[family])
    if family == "internvl":  # the wide image has tiles and a thumbnail, each drawn
        assert {v.kind for v in examples[0].layout.views} == {"local", "global"}
    fig, cells = plot_fig7(
        family, examples, PADDINGS, str(tmp_path / "f.png"), str(tmp_path / "f.pdf")
    )
    assert (tmp_path / "f.png").stat().st_size > 0 and (tmp_path / "f.pdf").stat().st_size > 0
    assert set(cells) == {(ex.sample_id, p) for ex in examples for p in PADDINGS}
    for ex in examples:
        sizes = []
        for p in PADDINGS:
            expected = np.sort(object_token_indices(ex.layout, ex.mask, p))
            assert np.array_equal(cells[(ex.sample_id, p)], expected), (ex.sample_id, p)
            sizes.append(len(expected))
        assert sizes == sorted(sizes) and sizes[-1] > sizes[2] > 0  # paddings do differ
    # every view's cells are drawn over that view's own region (pixel space)
    drawn = {im.get_gid(): im for ax in fig.axes for im in ax.get_images() if im.get_gid()}
    for ex in examples:
        for v in ex.layout.views:
            im = drawn[f"fig7:{ex.sample_id}:+0:{v.name}"]
            x0, y0, x1, y1 = v.region
            assert np.allclose(im.get_extent(), (x0, x1, y1, y0))


def _centre_tokens(views, offsets):
    """The tokens of ``views`` whose cell centres are the given points (one cell each)."""
    out = []
    for x, y in offsets:
        hit = []
        for v in views:
            xs, ys = v.cell_edges()
            cols = np.flatnonzero(np.isclose((xs[:-1] + xs[1:]) / 2, x))
            rows = np.flatnonzero(np.isclose((ys[:-1] + ys[1:]) / 2, y))
            hit += [v.offset + r * v.cols + c for r in rows for c in cols]
        assert len(hit) == 1, (x, y, hit)
        out += hit
    return out


def _boundary_edges(grid):
    """Sides of selected cells that face an unselected cell or the grid's edge."""
    g = grid.astype(int)
    inner = (g[1:, :] & g[:-1, :]).sum() + (g[:, 1:] & g[:, :-1]).sum()
    return 4 * int(g.sum()) - 2 * int(inner)


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_ig_grid_marks_the_top_k_and_outlines_the_object(tmp_path, geometry, family):
    examples = _examples(geometry[family])
    rng = np.random.default_rng(1)
    imp = {ex.sample_id: rng.random(ex.layout.n_tokens) for ex in examples}
    fig, drawn = plot_ig_grid(
        family,
        "localization",
        examples,
        imp,
        top_indices,
        str(tmp_path / "i.png"),
        str(tmp_path / "i.pdf"),
    )
    for ex in examples:
        obj = object_token_indices(ex.layout, ex.mask, 0)
        d = drawn[ex.sample_id]
        assert d["k"] == len(obj) and np.array_equal(d["object"], obj)
        assert np.array_equal(d["top"], top_indices(imp[ex.sample_id], len(obj)))
        # what is on the figure: the markers sit on exactly the top-k cells (over all panels),
        planes = dict(plane_views(ex.layout))
        marked = [
            t
            for ax in fig.axes
            for c in ax.collections
            if (c.get_gid() or "").startswith(f"top:{ex.sample_id}:")
            for t in _centre_tokens(planes[c.get_gid().split(":", 2)[2]], c.get_offsets())
        ]
        assert sorted(marked) == list(d["top"])
        # the outline has one segment per boundary side of the object's cells,
        segs = [
            s
            for ax in fig.axes
            for c in ax.collections
            if (c.get_gid() or "").startswith(f"object:{ex.sample_id}:")
            for s in c.get_segments()
        ]
        grids = mask_grids(ex.layout, ex.mask, 0)
        assert len(segs) == sum(_boundary_edges(g) for g in grids.values()) > 0
        # and the heatmap is the importance over the sample's largest, view by view
        for ax in fig.axes:
            for im in ax.get_images():
                gid = im.get_gid() or ""
                if gid.startswith(f"ig:{ex.sample_id}:"):
                    v = ex.layout.view(gid.split(":")[-1])
                    want = (
                        imp[ex.sample_id][v.offset : v.offset + v.n_tokens]
                        / imp[ex.sample_id].max()
                    )
                    assert np.allclose(np.asarray(im.get_array()), want.reshape(v.rows, v.cols))
    # other importances mark other tokens (the markers follow the importances)
    flipped = {sid: -v + v.max() for sid, v in imp.items()}
    _, drawn2 = plot_ig_grid(
        family,
        "list",
        examples,
        flipped,
        top_indices,
        str(tmp_path / "j.png"),
        str(tmp_path / "j.pdf"),
    )
    assert any(
        not np.array_equal(drawn[s]["top"], drawn2[s]["top"])
        for s in drawn
        if drawn[s]["k"] < len(imp[s])
    )


def test_ig_grid_refuses_importances_of_another_layout(tmp_path, geometry):
    ex = _examples(geometry["llava"])[:1]
    with pytest.raises(ValueError, match="importances for"):
        plot_ig_grid(
            "m",
            "list",
            ex,
            {"s0": np.ones(5)},
            top_indices,
            str(tmp_path / "a.png"),
            str(tmp_path / "a.pdf"),
        )


def _bucket_rows():
    rows = []
    for i, (bucket, w, h, frac, image) in enumerate(
        [
            ("small", 100, 100, 0.01, 1),
            ("small", 200, 100, 0.02, 2),  # elongated
            ("small", 100, 200, 0.03, 3),  # elongated
            ("small", 300, 100, 0.05, 4),  # elongated
            ("medium", 100, 100, 0.10, 5),
            ("medium", 110, 100, 0.20, 6),  # no elongated medium image: all of the bucket
            ("medium", 120, 100, 0.30, 7),
            ("large", 300, 100, 0.40, 3),  # elongated, but image 3 is shown already
            ("large", 100, 300, 0.50, 8),  # elongated
            ("large", 100, 100, 0.45, 9),
        ]
    ):
        rows.append(
            {
                "sample_id": f"x{i}",
                "image_id": image,
                "size_bucket": bucket,
                "width": w,
                "height": h,
            }
            | {"area_fraction": frac}
        )
    return pd.DataFrame(rows)


def test_grid_examples_follow_the_documented_rule():
    assert ELONGATED == 1.6
    ex = grid_examples(_bucket_rows())
    # small: median of the elongated (0.02, 0.03, 0.05) -> 0.03 (image 3); medium: none elongated,
    # the median of all -> 0.20; large: elongated 0.40 (image 3, shown) and 0.50 -> 0.50
    assert list(ex["size_bucket"]) == ["small", "medium", "large"]
    assert list(ex["sample_id"]) == ["x2", "x5", "x8"]
    # the same for any row order, and a bucket without samples is left out
    shuffled = _bucket_rows().sample(frac=1, random_state=0)
    assert list(grid_examples(shuffled)["sample_id"]) == ["x2", "x5", "x8"]
    no_medium = _bucket_rows().query("size_bucket != 'medium'")
    assert list(grid_examples(no_medium)["sample_id"]) == ["x2", "x8"]
    assert grid_examples(_bucket_rows().iloc[:0]).empty


def test_ig_importances_read_back_and_guard():
    rows = pd.DataFrame(
        {
            "sample_id": ["a", "a", "b", "a"],
            "task": ["list", "list", "list", "localization"],
            "ig_importance": [
                np.array([1.0, 2.0]),
                None,
                np.array([3.0, 0.0]),
                np.array([5.0, 6.0]),
            ],
        }
    )
    got = ig_importances(rows, "list")
    assert set(got) == {"a", "b"} and np.array_equal(got["a"], [1.0, 2.0])
    assert np.array_equal(ig_importances(rows, "localization")["a"], [5.0, 6.0])
    with pytest.raises(ValueError, match="more than one"):
        ig_importances(pd.concat([rows, rows.iloc[[0]]]), "list")
    with pytest.raises(ValueError, match="no ig_importance column"):
        ig_importances(rows.drop(columns="ig_importance"), "list")


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_token_ablation_stores_the_importances_it_ranks_by(tmp_path, adapters, family):
    """The first IG condition of each task carries every token's importance; its top k% is the
    set that condition ablates; the other conditions' rows and columns stay as they were."""
    a = adapters[family]
    samples = _samples(tmp_path, sizes=((160, 120), (300, 100)))
    ig = {**SETTINGS["integrated_gradients"], "k": [8, 24], "steps": 4}
    settings = {**SETTINGS, "integrated_gradients": ig}
    job = _job(a, samples, settings)
    conds = [
        c for c in get_experiment("token_ablation").conditions(job) if c.name.startswith("ig_")
    ]
    n_tokens = [lay.n_tokens for lay in job.layouts()]
    for task in ("localization", "list"):
        first, second = (next(c for c in conds if c.name == f"ig_{task}_k{k}") for k in (8, 24))
        assert all("ig_importance" not in x for x in second.extra)
        for x, y, n, e8, e24 in zip(
            first.extra, second.extra, n_tokens, first.edited, second.edited, strict=True
        ):
            imp = x["ig_importance"]
            assert imp.dtype == np.float32 and imp.shape == (n,)
            assert x["ig_gap"] == y["ig_gap"]
            assert np.array_equal(top_indices(imp, share_count(n, 8)), e8)
            assert np.array_equal(top_indices(imp, share_count(n, 24)), e24)
    # raw rows: through parquet, read back per sample and task
    firsts = [c for c in conds if c.name.endswith("_k8")]
    raw = run_conditions("token_ablation", firsts, job, ("strategy", "padding", "k", "seed"))
    path = tmp_path / "raw.parquet"
    raw.to_parquet(path)
    back = pd.read_parquet(path)
    assert back["ig_importance"].notna().sum() == 2 * len(samples)  # one row per sample and task
    first = next(c for c in conds if c.name == "ig_list_k8")
    got = ig_importances(back, "list")
    for r, x in zip(samples["sample_id"], first.extra, strict=True):
        assert np.allclose(got[r], x["ig_importance"])
