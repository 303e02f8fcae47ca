"""The knockout's controls (issue #25): random tokens drawn off the padded object over several
seeds, and the object's own mask translated to a background place; their tables (mean and std
over seeds, bootstrap intervals, skipped samples counted) and figures (the plotted data are the
table's numbers). No model weights: the real architectures' layouts, synthetic scored rows."""

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_snakemake
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import CLIPVisionConfig, InternVLConfig, LlavaConfig

from vlmloc.data.coco import encode_mask
from vlmloc.experiments.attention_knockout import (
    AttentionKnockoutExperiment,
    random_controls,
    translated_controls,
)
from vlmloc.experiments.base import ShardJob
from vlmloc.figures.knockout_figures import plot_fig3, plot_fig12
from vlmloc.geometry import (
    draw_translation,
    image_cells,
    object_token_indices,
    object_translations,
    random_outside_indices,
)
from vlmloc.models.internvl import InternVLAdapter
from vlmloc.models.llava import LlavaAdapter
from vlmloc.tables.knockout import knockout_summary, knockout_table

ROOT = Path(__file__).resolve().parents[1]
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
SIZES = {
    "llava": (640, 480),
    "internvl": (1000, 500),
}  # LLaVA: pad-to-square bars; InternVL: 2 tiles + thumbnail


def _ellipse(w, h, cx, cy, rx, ry) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1


def _samples(family: str, masks: list[np.ndarray]) -> pd.DataFrame:
    w, h = SIZES[family]
    return pd.DataFrame(
        [
            {"sample_id": f"s{i}", "width": w, "height": h, "mask_rle": encode_mask(m)["counts"]}
            for i, m in enumerate(masks)
        ]
    )


def _image_tokens(layout) -> set[int]:
    return {
        v.offset + int(i)
        for v in layout.views
        for i in np.flatnonzero(image_cells(v, layout.width, layout.height).ravel())
    }


masks = st.tuples(
    st.floats(0.1, 0.9), st.floats(0.1, 0.9), st.floats(0.03, 0.3), st.floats(0.03, 0.3)
)


@pytest.mark.parametrize("family", ["llava", "internvl"])
@settings(max_examples=25, deadline=None)
@given(ellipse=masks, seed=st.integers(0, 2**16), padding=st.integers(0, 2))
def test_random_tokens_never_touch_the_padded_object(family, ellipse, seed, padding):
    w, h = SIZES[family]
    layout = REAL[family].layout(w, h)
    mask = _ellipse(w, h, ellipse[0] * w, ellipse[1] * h, ellipse[2] * w, ellipse[3] * h)
    k = len(object_token_indices(layout, mask, 0))
    idx, why = random_outside_indices(layout, mask, k, np.random.default_rng(seed), padding)
    if why:  # no room: nothing drawn, and truly no room
        assert (
            len(idx) == 0
            and len(
                _image_tokens(layout) - set(object_token_indices(layout, mask, padding).tolist())
            )
            < k
        )
        return
    assert len(set(idx.tolist())) == len(idx) == k
    assert not set(idx.tolist()) & set(object_token_indices(layout, mask, padding).tolist())
    assert set(idx.tolist()) <= _image_tokens(layout)  # never LLaVA's padding bars


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_three_seeds_give_three_draws_off_the_object(family):
    w, h = SIZES[family]
    samples = _samples(
        family,
        [
            _ellipse(w, h, 0.3 * w, 0.5 * h, 0.1 * w, 0.15 * h),
            _ellipse(w, h, 0.7 * w, 0.4 * h, 0.2 * w, 0.2 * h),
        ],
    )
    rnd = random_controls(REAL[family], samples, [0, 1, 2], padding=1)
    moved = translated_controls(REAL[family], samples, [0, 1, 2], padding=1)
    layout = REAL[family].layout(w, h)
    for draws in (rnd, moved):
        assert sorted(draws) == [0, 1, 2]
        for i, r in enumerate(samples.to_dict("records")):
            padded = set(object_token_indices(layout, _decode(r), 1).tolist())
            per_seed = [tuple(draws[s][0][i].tolist()) for s in (0, 1, 2)]
            assert all(draws[s][1][i] == "" for s in (0, 1, 2))
            assert len(set(per_seed)) == 3, per_seed  # three different draws
            assert all(not set(d) & padded for d in per_seed)
    # a sample's draw does not depend on the other samples of its shard
    alone = random_controls(REAL[family], samples.iloc[[1]], [2], padding=1)[2][0][0]
    assert np.array_equal(alone, rnd[2][0][1])


def _decode(r):
    from vlmloc.data.filtering import sample_mask

    return sample_mask(r)


def _corners(layout, idx, kind) -> set[tuple[int, int]]:
    """Cells of some tokens in the views of one kind, as (column, row) in units of that kind's
    cell size from the kind's first corner (InternVL's tiles: one grid over the image)."""
    views = [v for v in layout.views if v.kind == kind]
    if not views:
        return set()
    ox, oy = min(v.region[0] for v in views), min(v.region[1] for v in views)
    cw, ch = (
        (views[0].region[2] - views[0].region[0]) / views[0].cols,
        (views[0].region[3] - views[0].region[1]) / views[0].rows,
    )
    table = {t["token"]: t for t in layout.token_table()}
    return {
        (round((table[int(i)]["x0"] - ox) / cw), round((table[int(i)]["y0"] - oy) / ch))
        for i in idx
        if table[int(i)]["kind"] == kind
    }


@pytest.mark.parametrize("family", ["llava", "internvl"])
@settings(max_examples=25, deadline=None)
@given(ellipse=masks, other=masks, seed=st.integers(0, 2**16))
def test_translated_mask_keeps_its_shape_inside_its_views_off_every_object(
    family, ellipse, other, seed
):
    w, h = SIZES[family]
    layout = REAL[family].layout(w, h)
    mask = _ellipse(w, h, ellipse[0] * w, ellipse[1] * h, ellipse[2] * w, ellipse[3] * h)
    others = _ellipse(w, h, other[0] * w, other[1] * h, other[2] * w, other[3] * h) & ~mask
    choices, why = object_translations(layout, mask, 1, others)
    if why:
        return
    idx = draw_translation(choices, np.random.default_rng(seed))
    src = object_token_indices(layout, mask, 0)
    assert len(idx) == len(src) == len(set(idx.tolist()))
    assert set(idx.tolist()) <= _image_tokens(
        layout
    )  # inside a view, on image pixels (not LLaVA's bars)
    assert not set(idx.tolist()) & set(object_token_indices(layout, mask, 1).tolist())
    assert not set(idx.tolist()) & set(object_token_indices(layout, others, 0).tolist())
    for kind in ("global", "local"):  # one shift per kind of grid: the same relative offsets
        a, b = _corners(layout, src, kind), _corners(layout, idx, kind)
        assert len(a) == len(b)
        if a:
            (x0, y0), (x1, y1) = min(a), min(b)
            assert {(x + x1 - x0, y + y1 - y0) for x, y in a} == b
    for v in layout.views:  # the thumbnail keeps its count; the tiles together keep theirs
        if v.kind == "global":
            inside = (idx >= v.offset) & (idx < v.offset + v.n_tokens)
            assert inside.sum() == ((src >= v.offset) & (src < v.offset + v.n_tokens)).sum()


def test_translation_without_room_is_skipped_with_its_reason():
    w, h = SIZES["llava"]
    layout = REAL["llava"].layout(w, h)
    mask = _ellipse(w, h, 0.5 * w, 0.5 * h, 0.1 * w, 0.1 * h)
    choices, why = object_translations(
        layout, mask, 1, ~mask
    )  # every other pixel is another object
    assert choices == [] and "no place" in why
    samples = _samples("llava", [mask])
    out = translated_controls(REAL["llava"], samples, [0], 1, [~mask])
    assert len(out[0][0][0]) == 0 and "no place" in out[0][1][0]
    big = np.ones((h, w), dtype=bool)
    big[:5, :5] = False
    idx, why = random_outside_indices(layout, big, 5, np.random.default_rng(0), 1)
    assert len(idx) == 0 and "needed" in why


def test_conditions_name_strategy_and_seed_tidily():
    w, h = SIZES["internvl"]
    samples = _samples("internvl", [_ellipse(w, h, 0.3 * w, 0.5 * h, 0.05 * w, 0.1 * h)])
    adapter = SimpleNamespace(layout=REAL["internvl"].layout, num_layers=4)
    s = {
        "fig3_window": 2,
        "fig12_windows": [2, 1],
        "stride": None,
        "all_layers": True,
        "paddings": [0, 1],
        "random_control": True,
        "random_seeds": [0, 1, 2],
        "random_outside_padding": 1,
        "translated_control": True,
        "translated_seeds": [0, 1, 2],
    }
    every = list(
        AttentionKnockoutExperiment().conditions(
            ShardJob(adapter, None, samples, [], {**s, "control_windows": "all"}, {})
        )
    )
    assert (
        len({c.name for c in every}) == len(every) == 1 + 7 * (2 + 3 + 3)
    )  # windows 0-1, 2-3, 0..3 singly, all
    job = ShardJob(adapter, None, samples, [], s, {})  # control_windows: fig3 (the default)
    conds = list(AttentionKnockoutExperiment().conditions(job))
    names = [c.name for c in conds]
    assert (
        len(names) == len(set(names)) == 1 + 7 * 2 + 3 * (3 + 3)
    )  # controls in 0-1, 2-3 and all layers only
    controlled = {
        (c.params["layer_first"], c.params["layer_last"])
        for c in conds
        if c.params["strategy"] in ("random", "translated")
    }
    assert controlled == {(0, 1), (2, 3), (0, 3)}
    assert {c.name for c in conds} < {c.name for c in every}
    assert {c.params["strategy"] for c in conds} == {"baseline", "object", "random", "translated"}
    for strategy in ("random", "translated"):
        mine = [c for c in conds if c.params["strategy"] == strategy]
        assert sorted({c.params["seed"] for c in mine}) == [0, 1, 2]
        assert all(
            c.extra == [{"skip_reason": ""}] and re.fullmatch(rf"{strategy}_s\d_l\d-\d", c.name)
            for c in mine
        )
    assert all(
        "seed" not in c.params for c in conds if c.params["strategy"] in ("object", "baseline")
    )


# ---- tables and figures from synthetic scored rows --------------------------------------------

ACC = {"object": 0.2, "random": 0.8, "translated": 0.6}


def _scored_rows(n_samples=12, n_layers=4, seeds=(0, 1, 2), skip=("s0",)) -> pd.DataFrame:
    """Scored knockout rows: windows of 2 and 1 layers and all; per seed a different accuracy;
    the translated control cannot place ``skip``."""
    rng = np.random.default_rng(0)
    windows = [(0, 1), (2, 3), (0, 0), (1, 1), (2, 2), (3, 3), (0, 3)]
    conds = [("baseline", {"strategy": "baseline"}, 0.9)]
    for a, b in windows:
        where = {"window": b - a + 1, "layer_first": a, "layer_last": b}
        for p in (0, 1):
            conds.append(
                (
                    f"object{p:+d}_l{a}-{b}",
                    {"strategy": "object", "padding": p, **where},
                    ACC["object"] + 0.1 * p + 0.05 * a,
                )
            )
        for strategy in ("random", "translated"):
            for s in seeds:
                conds.append(
                    (
                        f"{strategy}_s{s}_l{a}-{b}",
                        {"strategy": strategy, "padding": 0, "seed": s, **where},
                        ACC[strategy] - 0.1 * s,
                    )
                )
    rows = []
    for name, params, p in conds:
        for i in range(n_samples):
            sid = f"s{i}"
            why = (
                "no place for the object"
                if params["strategy"] == "translated" and sid in skip
                else ""
            )
            for task in ("localization", "list"):
                hit = float(rng.random() < p)
                rows.append(
                    {
                        "sample_id": sid,
                        "condition": name,
                        **params,
                        "task": task,
                        "loc_score": hit if task == "localization" else np.nan,
                        "identified": hit if task == "list" else np.nan,
                        "n_tokens": 576,
                        "n_edited": 0 if why else 20,
                        "n_tokens_global": 576,
                        "n_edited_global": 0 if why else 20,
                        "n_tokens_local": 0,
                        "n_edited_local": 0,
                        **(
                            {"skip_reason": why}
                            if params["strategy"] in ("random", "translated")
                            else {}
                        ),
                    }
                )
    return pd.DataFrame(rows)


def test_table_averages_a_control_over_seeds_with_its_std_and_counts_skips():
    rows = _scored_rows()
    t = knockout_table({"m": rows}, {"resamples": 200}).set_index("condition")
    assert not t.index.str.contains(r"_s\d").any()  # one row per control and window, not per seed
    for strategy in ("random", "translated"):
        r = t.loc[f"{strategy}_l0-1"]
        mine = rows[
            (rows["condition"].str.startswith(f"{strategy}_s"))
            & rows["condition"].str.endswith("_l0-1")
            & (rows["skip_reason"] == "")
            & (rows["task"] == "localization")
        ]
        per_seed = 100 * mine.groupby("seed")["loc_score"].mean()
        assert r["seeds"] == 3 and r["strategy"] == strategy
        assert r["loc"] == pytest.approx(per_seed.mean()) and r["loc_std"] == pytest.approx(
            per_seed.std(ddof=0)
        )
        assert r["loc_lo"] <= r["loc"] <= r["loc_hi"] and r["cls_lo"] <= r["cls"] <= r["cls_hi"]
        assert (
            r["n_skipped"] == (1 if strategy == "translated" else 0)
            and r["n"] == 12 - r["n_skipped"]
        )
    base = t.loc["baseline"]
    assert t.loc["random_l0-3", "loc_drop"] == pytest.approx(
        t.loc["random_l0-3", "loc"] - base["loc"]
    )  # no skip: plain
    # the translated control skips s0: its drop is paired on the samples it placed, not against
    # the baseline over all 12
    placed = rows[
        (rows["condition"] == "baseline")
        & (rows["task"] == "localization")
        & (rows["sample_id"] != "s0")
    ]
    assert t.loc["translated_l0-3", "loc_drop"] == pytest.approx(
        t.loc["translated_l0-3", "loc"] - 100 * placed["loc_score"].mean()
    )
    summary = knockout_summary(t.reset_index(), {})
    row = summary[(summary["task"] == "localization") & (summary["window"] == 4)].iloc[0]
    assert row["random_drop"] == pytest.approx(t.loc["random_l0-3", "loc_drop"])
    assert row["translated_drop"] == pytest.approx(t.loc["translated_l0-3", "loc_drop"])
    assert row["random_drop_std"] == pytest.approx(t.loc["random_l0-3", "loc_std"])


def test_a_control_that_skips_the_samples_it_cannot_place_is_compared_on_the_rest():
    """A control that answers exactly as the unmodified model shows no drop, however many samples
    it skips and however different they are (large objects, which the baseline gets right)."""
    rows = _scored_rows(skip=tuple(f"s{i}" for i in range(6)))
    base = rows[rows["condition"] == "baseline"].drop(columns=["condition", "strategy"])
    same = rows[rows["condition"].str.startswith("translated_")].drop(
        columns=["loc_score", "identified"]
    )
    same = same.merge(
        base[["sample_id", "task", "loc_score", "identified"]], on=["sample_id", "task"]
    )
    skipped = same["sample_id"].isin([f"s{i}" for i in range(6)])
    # the skipped samples are the ones the baseline gets right, the placed ones it gets wrong
    for col, task in (("loc_score", "localization"), ("identified", "list")):
        rows.loc[(rows["condition"] == "baseline") & (rows["task"] == task), col] = [1.0] * 6 + [
            0.0
        ] * 6
        same.loc[same["task"] == task, col] = np.where(skipped[same["task"] == task], np.nan, 0.0)
    rows = pd.concat(
        [rows[~rows["condition"].str.startswith("translated_")], same], ignore_index=True
    )
    t = knockout_table({"m": rows}).set_index("condition")
    assert t.loc["baseline", "loc"] == pytest.approx(50.0)
    for cond in ("translated_l0-1", "translated_l0-3"):
        assert t.loc[cond, "loc"] == pytest.approx(0.0) and t.loc[cond, "n_skipped"] == 6
        assert t.loc[cond, "loc_drop"] == pytest.approx(0.0) and t.loc[
            cond, "cls_drop"
        ] == pytest.approx(0.0)


def test_a_control_that_skips_every_sample_keeps_its_row():
    rows = _scored_rows(skip=tuple(f"s{i}" for i in range(12)))
    t = knockout_table({"m": rows}).set_index("condition")
    assert t.loc["translated_l0-1", "n"] == 0 and t.loc["translated_l0-1", "n_skipped"] == 12
    assert np.isnan(t.loc["translated_l0-1", "loc"])


def _line(ax, label):
    lines = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert len(lines) == 1, (label, [ln.get_label() for ln in ax.get_lines()])
    return np.asarray(lines[0].get_ydata(), dtype=float)


def test_figures_plot_the_table_numbers(tmp_path):
    t = knockout_table({"m": _scored_rows()}, {"resamples": 200})
    fig3 = plot_fig3(t, {"m": 2}, tmp_path / "f3.png", tmp_path / "f3.pdf")
    fig12 = plot_fig12(t, {"m": [2, 1]}, tmp_path / "f12.png", tmp_path / "f12.pdf")
    panels = [(fig3.axes[0], 2), (fig12.axes[0], 2), (fig12.axes[1], 1)]
    for ax, size in panels:
        for short, label in (("loc", "localization"), ("cls", "classification")):
            w = t[t["window"] == size].sort_values("layer_first")
            obj = w[(w["strategy"] == "object") & (w["padding"] == 0)]
            np.testing.assert_allclose(_line(ax, f"{label}, object mask"), obj[short])
            base = t.loc[t["strategy"] == "baseline", short].iloc[0]
            # controls: the unmodified model plus their drop paired on the samples they placed
            np.testing.assert_allclose(
                _line(ax, f"{label}, random control (3 seeds)"),
                base + w.loc[w["strategy"] == "random", f"{short}_drop"],
            )
            np.testing.assert_allclose(
                _line(ax, f"{label}, translated control"),
                base + w.loc[w["strategy"] == "translated", f"{short}_drop"],
            )
            assert _line(ax, f"{label}, unmodified model")[0] == pytest.approx(base)
        # bands: the object's bootstrap interval and the random control's spread over seeds
        assert len(ax.collections) >= 4
    np.testing.assert_allclose(
        _line(fig12.axes[0], "localization, object mask +1"),
        t[(t["window"] == 2) & (t["strategy"] == "object") & (t["padding"] == 1)].sort_values(
            "layer_first"
        )["loc"],
    )
    assert (tmp_path / "f3.png").stat().st_size > 10_000 and (tmp_path / "f12.pdf").exists()


def test_default_config_dry_run_keeps_one_knockout_job_per_model_and_shard(workflow_dir):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    ko = cfg["experiments"]["attention_knockout"]
    assert ko["random_seeds"] == [0, 1, 2] and ko["translated_control"] and "random_seed" not in ko
    proc = run_snakemake(workflow_dir, "-n")
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout + proc.stderr)
    jobs = [
        b
        for b in blocks
        if b.startswith("rule run_experiment:") and "experiments/attention_knockout/" in b
    ]
    expected = len(ko["datasets"]) * len(cfg["run"]["models"]) * ko["shards"]
    assert len(jobs) == expected == 2


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_job_rows_carry_each_skip_and_the_table_counts_it(adapters, tmp_path, family):
    """Through run_shard, score_rows and the table on a tiny random model: a sample whose image
    is covered by other objects gets no translated knockout (an empty key set), its rows say why,
    and the table leaves it out and counts it; every (condition, task) still has every sample."""
    from test_experiment_layer import CATS, MAX_NEW, _samples

    from vlmloc.experiments import run_shard
    from vlmloc.runner import Runner
    from vlmloc.scoring import check_complete, score_rows

    a = adapters[family]
    samples = _samples(tmp_path)
    crowded = np.ones(
        (int(samples["height"][1]), int(samples["width"][1])), dtype=bool
    )  # sample s1: no free place
    others = [[], [encode_mask(crowded)], []]
    s = {
        "fig3_window": 1,
        "fig12_windows": [1],
        "stride": None,
        "all_layers": True,
        "paddings": [0],
        "random_control": True,
        "random_seeds": [0, 1],
        "random_outside_padding": 1,
        "translated_control": True,
        "translated_seeds": [0, 1],
    }
    job = ShardJob(
        a,
        Runner(a, batch_size=4, progress=False),
        samples,
        CATS,
        s,
        MAX_NEW,
        present=[[c] for c in samples["category"]],
        progress=False,
        others=others,
    )
    raw = run_shard(AttentionKnockoutExperiment(), job)
    check_complete(raw, list(samples["sample_id"]))
    moved = raw[raw["strategy"] == "translated"]
    assert (moved.loc[moved["sample_id"] == "s1", "skip_reason"].str.startswith("no place")).all()
    assert (moved.loc[moved["sample_id"] == "s1", "n_edited"] == 0).all()
    table = knockout_table({"m": score_rows(raw, samples, family, CATS)}).set_index("condition")
    n_layers = a.num_layers
    row = table.loc[f"translated_l0-{n_layers - 1}"]
    assert row["n_skipped"] >= 1 and row["n"] + row["n_skipped"] == 3 and row["seeds"] == 2
    rnd = table.loc[f"random_l0-{n_layers - 1}"]
    assert rnd["n"] + rnd["n_skipped"] == 3 and rnd["seeds"] == 2
