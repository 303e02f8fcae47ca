"""Containerization, token shuffling and single-view ablation (paper sec. 3.1.1-3.1.2) on tiny
random models: what each condition writes, where, and that it changes the model when it must."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from test_experiment_layer import CATS, _job, _mask, _samples

from vlmloc.experiments import get_experiment, run_shard
from vlmloc.experiments.containerization import grow_object, shuffle_tokens
from vlmloc.geometry import mask_grids, scaled_box
from vlmloc.interventions import BatchContext, CopyVisualTokens
from vlmloc.models.base import ImageLayout, View
from vlmloc.scoring import EXCLUDED, check_complete, score_rows

GROW = {
    "paddings": [1, 2],
    "seeds": [0, 1],
    "scales": [0, 1, 2],
    "scale_grid": "global",
    "tasks": ["localization"],
}
SHUFFLE = {"modes": ["full", "object"], "seeds": [0]}
VIEWS = {"views": ["global", "local", "both"], "paddings": [-1, 0, 1], "multi_view_only": True}


@pytest.fixture
def samples(tmp_path):
    # wide, tall and squarish images: InternVL gives the first two tiles + thumbnail, the last one view
    return _samples(tmp_path, sizes=((300, 100), (90, 200), (60, 60)))


def _edited_features(adapter, samples, intervention):
    """The visual tokens at the LLM input without and with ``intervention``, split per sample."""
    enc = adapter.encode(
        [Image.open(p).convert("RGB") for p in samples["image_path"]], ["Hi"] * len(samples)
    )
    with torch.inference_mode():
        ref = adapter.image_features(enc.inputs["pixel_values"])
        with intervention(adapter, BatchContext.of(enc)):
            got = adapter.image_features(enc.inputs["pixel_values"])
    sizes = [lay.n_tokens for lay in enc.layouts]
    return torch.split(ref, sizes), torch.split(got, sizes), enc.layouts


def _view_of(layout, token):
    return next(v for v in layout.views if v.offset <= token < v.offset + v.n_tokens)


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_growth_writes_only_the_ring_with_copies_of_object_tokens(adapters, samples, family):
    a = adapters[family]
    job = _job(a, samples, GROW, mean=torch.zeros(1))
    conds = {c.name: c for c in get_experiment("containerization").conditions(job)}
    assert set(conds) == {"baseline", "grow+1_s0", "grow+1_s1", "grow+2_s0", "grow+2_s1"}
    for p in (1, 2):
        ref, got, layouts = _edited_features(a, samples, conds[f"grow{p:+d}_s0"].intervention)
        for q, lay in enumerate(layouts):
            mask = _mask(samples.iloc[q])
            inside, grown = mask_grids(lay, mask, 0), mask_grids(lay, mask, p)
            ring = np.concatenate(
                [
                    v.offset + np.flatnonzero((grown[v.name] & ~inside[v.name]).ravel())
                    for v in lay.views
                ]
            )
            changed = torch.nonzero((got[q] != ref[q]).any(-1)).flatten().numpy()
            assert len(ring) and set(changed) <= set(ring)  # only ring tokens are written
            assert len(changed) >= 0.9 * len(
                ring
            )  # and (random weights: all distinct) nearly all change
            for t in ring:  # each ring token now holds one of its view's original object tokens
                v = _view_of(lay, t)
                obj = v.offset + np.flatnonzero(inside[v.name].ravel())
                assert any(torch.equal(got[q][t], ref[q][o]) for o in obj), (family, q, t)
        if family == "internvl":  # every view grows, the tiles and the thumbnail
            kinds = {_view_of(layouts[0], t).kind for t in conds[f"grow{p:+d}_s0"].edited[0]}
            assert kinds == {"global", "local"}
    # seeds draw differently; the ring is the same
    e0, e1 = conds["grow+1_s0"].intervention, conds["grow+1_s1"].intervention
    assert all(np.array_equal(x, y) for x, y in zip(e0.targets, e1.targets, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(e0.sources, e1.sources, strict=True))


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_shuffle_keeps_the_multiset_and_moves_only_its_tokens(adapters, samples, family):
    a = adapters[family]
    job = _job(a, samples, SHUFFLE, mean=torch.zeros(1))
    conds = {c.name: c for c in get_experiment("token_shuffle").conditions(job)}
    assert set(conds) == {"baseline", "shuffle_full_s0", "shuffle_object_s0"}
    for mode in ("full", "object"):
        ref, got, layouts = _edited_features(a, samples, conds[f"shuffle_{mode}_s0"].intervention)
        for q, lay in enumerate(layouts):
            inside = mask_grids(lay, _mask(samples.iloc[q]), 0)
            changed = torch.nonzero((got[q] != ref[q]).any(-1)).flatten().numpy()
            for v in lay.views:  # within each view: the same embeddings, reordered
                sl = slice(v.offset, v.offset + v.n_tokens)
                key = lambda x: x[torch.argsort(x[:, 0])]  # noqa: E731  (random weights: first coordinates differ)
                torch.testing.assert_close(key(got[q][sl]), key(ref[q][sl]), rtol=0, atol=0)
                allowed = v.offset + (
                    np.arange(v.n_tokens)
                    if mode == "full"
                    else np.flatnonzero(inside[v.name].ravel())
                )
                mine = changed[(changed >= v.offset) & (changed < v.offset + v.n_tokens)]
                assert set(mine) <= set(allowed)
                if len(allowed) > 3:
                    assert len(mine) > 0, (
                        family,
                        mode,
                        q,
                        v.name,
                    )  # a shuffle that moved nothing is a bug
            if mode == "object":
                assert len(changed) < lay.n_tokens / 2


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_identity_permutation_changes_no_logit_and_a_shuffle_does(adapters, samples, family):
    a = adapters[family]
    runner = _job(a, samples, SHUFFLE, mean=torch.zeros(1)).runner
    layouts = [
        a.layout(int(w), int(h)) for w, h in zip(samples["width"], samples["height"], strict=True)
    ]
    every = [np.arange(lay.n_tokens) for lay in layouts]
    images, prompts, answers = (
        list(samples["image_path"]),
        ["Where?"] * len(samples),
        ["[0.1, 0.2, 0.3, 0.4]"] * len(samples),
    )
    stock = runner.score(images, prompts, answers)
    same = runner.score(images, prompts, answers, intervention=CopyVisualTokens(every, every))
    for x, y in zip(
        stock, same, strict=True
    ):  # float32 rounding only (the hook's output is a new tensor)
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)
    moves = [shuffle_tokens(lay, None, np.random.default_rng(q)) for q, lay in enumerate(layouts)]
    shuffled = runner.score(
        images,
        prompts,
        answers,
        intervention=CopyVisualTokens([t for t, _ in moves], [s for _, s in moves]),
    )
    assert all(np.abs(x - y).max() > 1e-4 for x, y in zip(stock, shuffled, strict=True))


def test_copy_validates_its_pairs():
    with pytest.raises(ValueError, match="targets for"):
        CopyVisualTokens([np.array([1, 2])], [np.array([1])])
    with pytest.raises(ValueError, match="twice"):
        CopyVisualTokens([np.array([1, 1])], [np.array([2, 3])])


def test_grow_object_draws_from_the_same_view():
    views = (
        View("tile_0", "local", 4, 4, (0, 0, 40, 40), 0),
        View("global", "global", 4, 4, (0, 0, 80, 40), 16),
    )
    lay = ImageLayout(80, 40, views)
    mask = np.zeros((40, 80), dtype=bool)
    mask[15:25, 15:25] = (
        True  # the middle of tile 0 (2x2 cells), the left half's middle of the thumbnail
    )
    targets, sources = grow_object(lay, mask, 1, np.random.default_rng(0))
    inside = mask_grids(lay, mask, 0)
    for t, s in zip(targets, sources, strict=True):
        v = _view_of(lay, t)
        assert _view_of(lay, s) is v and inside[v.name].ravel()[s - v.offset]
        assert not inside[v.name].ravel()[t - v.offset]
    assert len(targets) == (16 - 4) + (
        9 - 1
    )  # tile: 4x4 around 2x2 (clipped at the grid), thumbnail: 3x3 around 1


def test_scaled_box_grows_by_cells_and_clips_at_the_image():
    # LLaVA-like: a 100x60 image padded to a 100x100 square, 10x10 cells of 10 px
    lay = ImageLayout(100, 60, (View("image", "global", 10, 10, (0, -20, 100, 80), 0),))
    assert scaled_box((30, 20, 50, 40), lay, 0) == (30, 20, 50, 40)
    assert scaled_box((30, 20, 50, 40), lay, 1) == (20, 10, 60, 50)
    assert scaled_box((30, 20, 50, 40), lay, 2) == (10, 0, 70, 60)
    assert scaled_box((5, 2, 95, 58), lay, 1) == (
        0,
        0,
        100,
        60,
    )  # clipped at the image, not the padded square
    # InternVL-like: thumbnail cells 200/4 x 100/4, tile cells 100/4 x 100/4
    views = (
        View("tile_0", "local", 4, 4, (0, 0, 100, 100), 0),
        View("tile_1", "local", 4, 4, (100, 0, 200, 100), 16),
        View("global", "global", 4, 4, (0, 0, 200, 100), 32),
    )
    lay = ImageLayout(200, 100, views)
    assert scaled_box((80, 40, 120, 60), lay, 1) == (30, 15, 170, 85)
    assert scaled_box((80, 40, 120, 60), lay, 1, grid="finest") == (55, 15, 145, 85)
    with pytest.raises(ValueError, match="scale grid"):
        scaled_box((0, 0, 1, 1), lay, 1, grid="coarse")


def test_single_view_ablation_touches_only_that_view(adapters, samples):
    a = adapters["internvl"]
    job = _job(a, samples, VIEWS)
    exp = get_experiment("view_ablation")
    assert exp.exclude(job) == {"s2": "single view (no local view to ablate)"}  # the squarish image
    job = job.without(["s2"])
    conds = {c.name: c for c in exp.conditions(job)}
    for view in ("global", "local", "both"):
        ref, got, layouts = _edited_features(a, job.samples, conds[f"{view}+0"].intervention)
        for q, lay in enumerate(layouts):
            changed = torch.nonzero((got[q] != ref[q]).any(-1)).flatten().numpy()
            kinds = {_view_of(lay, t).kind for t in changed}
            assert len(changed) and kinds == ({"global", "local"} if view == "both" else {view}), (
                view,
                q,
                kinds,
            )
            assert np.array_equal(np.sort(changed), np.sort(conds[f"{view}+0"].edited[q]))
    assert exp.skip_reason(a) is None
    assert "no local views" in exp.skip_reason(adapters["llava"])


def test_excluded_samples_are_rows_and_pass_the_gather(adapters, samples):
    a = adapters["internvl"]
    settings = {**VIEWS, "views": ["global"], "paddings": [0]}
    raw = run_shard(get_experiment("view_ablation"), _job(a, samples, settings))
    ex = raw[raw["condition"] == EXCLUDED]
    assert list(ex["sample_id"]) == ["s2"] and "single view" in ex["answer"].iloc[0]
    assert set(raw.loc[raw["condition"] != EXCLUDED, "sample_id"]) == {"s0", "s1"}
    check_complete(raw, samples["sample_id"])
    with pytest.raises(ValueError, match="missing"):
        check_complete(
            raw[~((raw["sample_id"] == "s1") & (raw["condition"] == "global+0"))],
            samples["sample_id"],
        )
    with pytest.raises(ValueError, match="both excluded and answered"):
        check_complete(
            pd.concat([raw, raw[raw["condition"] == EXCLUDED].assign(sample_id="s0")]),
            samples["sample_id"],
        )
    scored = score_rows(raw, samples, "internvl", CATS)
    assert (scored.loc[scored["condition"] == EXCLUDED, "status"] == "excluded").all()


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_fast_path_equals_the_naive_reference(adapters, samples, family):
    """Batched, shared-prefix runs of the new conditions give the answers of one generate per
    sample and task (the reference kept in ``experiments.base``)."""
    from vlmloc.experiments.base import run_conditions
    from vlmloc.experiments.reference import run_conditions_naive

    a = adapters[family]
    conds = [
        c
        for c in get_experiment("containerization").conditions(
            _job(a, samples, GROW, mean=torch.zeros(1))
        )
        if c.name == "grow+2_s0"
    ]
    conds += [
        c
        for c in get_experiment("token_shuffle").conditions(
            _job(a, samples, SHUFFLE, mean=torch.zeros(1))
        )
        if c.name == "shuffle_object_s0"
    ]
    if family == "internvl":
        conds += [
            c
            for c in get_experiment("view_ablation").conditions(_job(a, samples, VIEWS))
            if c.name == "local+1"
        ]
    job = _job(a, samples, {}, mean=torch.zeros(1))
    key = ["condition", "task", "sample_id"]
    fast = run_conditions("t", conds, job).sort_values(key).reset_index(drop=True)
    naive = run_conditions_naive("t", conds, job).sort_values(key).reset_index(drop=True)
    assert len(fast) == len(naive) > 0
    assert list(fast["answer"]) == list(naive["answer"])
    assert list(fast["n_edited"]) == list(naive["n_edited"])


def _cell_rows(n_samples: int, hit_rate: float, seed: int = 0) -> pd.DataFrame:
    """Scored localization rows of a baseline and padding 1 x 2 seeds: a prediction is the true box
    (IoU 1) with probability ``hit_rate`` per sample, else a box beside it (IoU 0)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_samples):
        hit = rng.random() < hit_rate
        for padding, seed_ in ((0, np.nan), (1, 0), (1, 1)):
            box = (10.0, 10.0, 20.0, 20.0) if hit else (40.0, 40.0, 50.0, 50.0)
            rows.append(
                {
                    "sample_id": f"s{i}",
                    "task": "localization",
                    "condition": f"p{padding}_s{seed_}",
                    "padding": padding,
                    "seed": seed_,
                    "pred_x1": box[0],
                    "pred_y1": box[1],
                    "pred_x2": box[2],
                    "pred_y2": box[3],
                    "gt_box_s0": (10.0, 10.0, 20.0, 20.0),
                    "gt_box_s1": (5.0, 5.0, 25.0, 25.0),
                }
            )
    return pd.DataFrame(rows)


def test_containerization_cells_carry_a_sample_bootstrap_interval():
    from vlmloc.tables.containers import containerization_cells

    boot = {"resamples": 2000, "level": 0.95, "seed": 0}
    small, large = (
        containerization_cells(_cell_rows(n, 0.5), "loc_score", boot) for n in (20, 400)
    )
    for cells, n in ((small, 20), (large, 400)):
        assert (cells["lo"] <= cells["mean"]).all() and (cells["mean"] <= cells["hi"]).all()
        assert (cells["n"] == n).all()
    cell = lambda t: t[(t["padding"] == 1) & (t["scale"] == 0)].iloc[0]  # noqa: E731
    # half the samples right: a binomial mean's 95% interval is about +-1.96 x 50 / sqrt(n) points
    assert (cell(small)["hi"] - cell(small)["lo"]) == pytest.approx(
        2 * 1.96 * 50 / np.sqrt(20), rel=0.25
    )
    assert (cell(large)["hi"] - cell(large)["lo"]) < 0.3 * (cell(small)["hi"] - cell(small)["lo"])
    # every sample right: no spread
    sure = containerization_cells(_cell_rows(30, 1.0), "loc_score", boot)
    s0 = sure[(sure["padding"] == 1) & (sure["scale"] == 0)].iloc[0]
    assert s0["lo"] == s0["hi"] == s0["mean"] == 100.0


def test_view_drops_carry_a_paired_bootstrap_interval():
    """Fig 10's bars: the interval is over each sample's change from its own baseline answer, so a
    view ablation that changes every sample by the same amount has no spread at all."""
    from vlmloc.tables.views import size_drops

    rows = []
    for i in range(40):
        base = float(i % 2)  # half the samples right at baseline (unpaired spread: large)
        for view, value in (("none", base), ("global", base), ("local", 0.0)):
            rows.append(
                {
                    "sample_id": f"s{i}",
                    "condition": view,
                    "task": "localization",
                    "view": view,
                    "padding": 0,
                    "size_bucket": "small",
                    "loc_score": value,
                }
            )
    drops = size_drops({"m": pd.DataFrame(rows)}, {}, 0, {"resamples": 2000, "seed": 0}).set_index(
        "view"
    )
    assert (
        drops.loc["global", "drop"]
        == drops.loc["global", "drop_lo"]
        == drops.loc["global", "drop_hi"]
        == 0.0
    )
    local = drops.loc["local"]
    assert local["drop"] == pytest.approx(-50.0) and local["drop_lo"] < -50 < local["drop_hi"]
    assert local["drop_hi"] - local["drop_lo"] == pytest.approx(
        2 * 1.96 * 50 / np.sqrt(40), rel=0.25
    )
