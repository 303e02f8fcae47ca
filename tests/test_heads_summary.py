"""Per-head mediation and head-ablation tables and figures from rows built by hand (what each
number must be)."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from vlmloc.experiments.heads_summary import (
    head_ablation_auc,
    head_ablation_table,
    head_scores,
    lowest,
    mediation_overlap,
    mediation_sparsity,
    normalized_auc,
    ranking,
    top_k,
)
from vlmloc.paper import MEDIATION_OVERLAP, PAPER_MODELS

BOOT = {"resamples": 1000, "level": 0.95, "seed": 0}


def _row(sample: str, condition: str, task: str, ppl: float, layer=-1, head=-1) -> dict:
    return {
        "sample_id": sample,
        "condition": condition,
        "layer": layer,
        "head": head,
        "task": task,
        "nll": math.log(ppl),
        "n_content": 3,
    }


def _pair(sample: str, task: str, p_base: float, p_src: float, patched: dict) -> list[dict]:
    """A pair's base and source rows and one patched row per (layer, head), from perplexities."""
    rows = [_row(sample, "base", task, p_base), _row(sample, "source", task, p_src)]
    return rows + [_row(sample, f"l{la}.h{h}", task, p, la, h) for (la, h), p in patched.items()]


def _hand_rows() -> pd.DataFrame:
    """Heads (0,0): MF 0.5 and 1; (0,1) and (1,1): MF 0; (1,0): MF -1. The third pair's gap
    (log 2.2 - log 2 < 0.25) is too small: its absurd patched values must not count."""
    rows = _pair("a", "localization", 4, 2, {(0, 0): 3, (0, 1): 4, (1, 0): 6, (1, 1): 4})
    rows += _pair("b", "localization", 10, 5, {(0, 0): 5, (0, 1): 10, (1, 0): 15, (1, 1): 10})
    rows += _pair(
        "c", "localization", 2, 2.2, {(0, 0): 100, (0, 1): 0.01, (1, 0): 100, (1, 1): 100}
    )
    rows.append(
        {
            "sample_id": "x",
            "condition": "excluded",
            "layer": -1,
            "head": -1,
            "task": "localization",
            "nll": np.nan,
            "n_content": 0,
        }
    )
    return pd.DataFrame(rows)


def test_mf_matches_a_hand_computation_and_small_gaps_are_dropped():
    h = head_scores(_hand_rows(), 0.25, BOOT).set_index(["layer", "head"])
    assert h.loc[(0, 0), "mf_mean"] == pytest.approx(0.75)  # (4-3)/(4-2) = 0.5, (10-5)/(10-5) = 1
    # the bootstrap of two values: its 2.5% and 97.5% quantiles are the values themselves
    assert [h.loc[(0, 0), "mf_lo"], h.loc[(0, 0), "mf_hi"]] == pytest.approx([0.5, 1.0])
    # mean perplexities: base 7, patched 4, source 3.5
    assert h.loc[(0, 0), "mf_avg_ppl"] == pytest.approx(3 / 3.5)
    assert h.loc[(1, 0), "mf_mean"] == pytest.approx(-1)
    assert h.loc[(0, 1), "mf_mean"] == pytest.approx(0)
    assert (h["n_pairs"] == 2).all() and (h["n_pairs_total"] == 3).all()
    assert (h["n_excluded"] == 1).all()
    # a tie goes to the lower layer
    assert h["rank"].to_dict() == {(0, 0): 1, (0, 1): 2, (1, 1): 3, (1, 0): 4}
    heads = h.reset_index()
    assert ranking(heads, "localization") == [(0, 0), (0, 1), (1, 1), (1, 0)]
    assert lowest(heads, "localization") == [(0, 1), (1, 1), (0, 0), (1, 0)]
    # a lower threshold keeps the third pair, whose MF (2 - 100) / (2 - 2.2) dominates
    loose = head_scores(_hand_rows(), 0.05, BOOT).set_index(["layer", "head"])
    assert loose.loc[(0, 0), "n_pairs"] == 3
    assert loose.loc[(0, 0), "mf_mean"] == pytest.approx((0.5 + 1 + 490) / 3)


def test_a_task_without_kept_pairs_is_nan():
    rows = _pair("a", "binary", 4, 4.1, {(0, 0): 3}) + _pair("a", "localization", 4, 2, {(0, 0): 3})
    h = head_scores(pd.DataFrame(rows), 0.25, BOOT).set_index("task")
    assert list(h.index) == ["localization", "binary"]
    assert h.loc["binary", "n_pairs"] == 0 and h.loc["binary", "n_pairs_total"] == 1
    assert h.loc["binary", ["mf_mean", "mf_lo", "mf_hi", "mf_avg_ppl"]].isna().all()
    assert h.loc["localization", "mf_mean"] == pytest.approx(0.5)


@pytest.mark.parametrize("drop", ["base", "source"])
def test_a_head_without_its_pair_raises(drop):
    rows = _hand_rows()
    rows = rows[~((rows["sample_id"] == "b") & (rows["condition"] == drop))]
    with pytest.raises(ValueError, match="lack their pair's base or source.*'b'"):
        head_scores(rows, 0.25, BOOT)


def _heads(mf: list[float], task: str = "localization", n_pairs: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": task,
            "layer": np.arange(len(mf)),
            "head": 0,
            "mf_mean": mf,
            "n_pairs": n_pairs,
            "n_pairs_total": 7,
            "n_excluded": 1,
        }
    )


def test_sparsity_shares_on_a_known_vector():
    mf = [-4, 3, 2, 1] + [0.0625] * 96  # 100 heads, total |MF| 16
    s = mediation_sparsity({"m": _heads(mf)}, {"m": "llava-1.5-7b"}).iloc[0]
    assert (s["k_top1pct"], s["k_top5pct"], s["k_top10pct"]) == (1, 5, 10)
    assert s["share_top1pct"] == pytest.approx(4 / 16)
    assert s["share_top3"] == pytest.approx(9 / 16)
    assert s["share_top5pct"] == pytest.approx(10.0625 / 16)
    assert s["share_top10pct"] == pytest.approx(10.375 / 16)
    assert s["share_negative"] == pytest.approx(0.01)
    assert (s["n_pairs"], s["n_pairs_total"], s["paper_name"]) == (5, 7, "llava-1.5-7b")
    # at least one head, rounded up
    assert (top_k(16, 1), top_k(150, 1), top_k(1600, 5)) == (1, 2, 80)


def test_overlap_counts_on_known_rankings():
    loc = list(np.linspace(1, 0.05, 20))  # ranks heads 0..19 in order
    # the binary top-10 shares heads 0, 1, 2 with the localization top-10
    order = [0, 1, 2, *range(10, 17), *range(3, 10), *range(17, 20)]
    cls = np.empty(20)
    cls[order] = np.linspace(1, 0.05, 20)
    heads = pd.concat([_heads(loc), _heads(list(cls), "binary")])
    names = {"m": "internvl-3.5-8b", "t": ""}
    o = mediation_overlap({"m": heads, "t": heads}, names).set_index(["model", "k_requested"])
    assert o.loc[("m", 10), "shared"] == 3
    assert o.loc[("m", 10), "expected_chance"] == pytest.approx(5)  # 10 * 10 / 20
    top50 = o.loc[("m", 50)]  # capped at the 20 heads there are
    assert (top50["k"], top50["shared"], top50["expected_chance"]) == (20, 20, 20)
    assert (o.loc[("m", 10), "paper_shared"], top50["paper_shared"]) == (1, 18)
    assert np.isnan(o.loc[("t", 10), "paper_shared"])


def test_overlap_needs_both_tasks_scored():
    heads = pd.concat([_heads([0.5, 0.2]), _heads([np.nan, np.nan], "binary")])
    assert np.isnan(mediation_overlap({"m": heads}, {}).loc[0, "shared"])


def test_paper_overlap_numbers():
    assert set(MEDIATION_OVERLAP) == set(PAPER_MODELS)
    assert MEDIATION_OVERLAP["llava-1.5-7b"] == {10: 2, 50: 20}
    assert MEDIATION_OVERLAP["llava-1.5-13b"] == {10: 2, 50: 15}
    assert MEDIATION_OVERLAP["internvl-3.5-8b"] == {10: 1, 50: 18}


def _ablation_rows(curves: dict, baseline: float = 1.0, n: int = 4) -> pd.DataFrame:
    """Scored rows: every sample scores ``acc`` at each (setting, seed) and proportion; and one
    excluded sample."""
    points = [("baseline", -1, 0.0, baseline)]
    points += [(s, seed, p, a) for (s, seed), c in curves.items() for p, a in c.items()]
    rows = [
        {
            "sample_id": f"s{i}",
            "condition": f"{s}.{seed}.{p}",
            "setting": s,
            "proportion": p,
            "n_heads": int(p * 16),
            "seed": seed,
            "task": "localization",
            "loc_score": a,
            "status": "ok",
        }
        for s, seed, p, a in points
        for i in range(n)
    ]
    rows.append(
        {
            "sample_id": "x",
            "condition": "excluded",
            "setting": "baseline",
            "proportion": 0.0,
            "n_heads": 0,
            "seed": -1,
            "task": "localization",
            "loc_score": 0.0,
            "status": "excluded",
        }
    )
    return pd.DataFrame(rows)


CURVES = {
    ("localization", -1): {0.25: 0.75, 0.5: 0.5, 0.75: 0.25, 1.0: 0.0},
    ("lowest", -1): {0.1: 0.0, 0.5: 0.0},
    ("random", 0): {0.5: 0.6, 1.0: 0.2},
    ("random", 1): {0.5: 0.2, 1.0: 0.2},
}


def test_head_ablation_curves_start_at_the_baseline():
    t = head_ablation_table({"m": _ablation_rows(CURVES)}, BOOT, {"m": "llava-1.5-7b"})
    curves = t.drop_duplicates(["setting", "seed"])
    assert list(curves["setting"]) == ["localization", "lowest", "random", "random"]
    first = t.groupby(["setting", "seed"]).head(1)
    assert (first["proportion"] == 0).all() and (first["n_heads"] == 0).all()
    assert (first["accuracy"] == 100).all()
    loc = t[t["setting"] == "localization"]
    assert list(loc["accuracy"]) == pytest.approx([100, 75, 50, 25, 0])
    assert (loc["n"] == 4).all()  # the excluded sample is not counted
    assert (t["paper_name"] == "llava-1.5-7b").all() and set(t["seed"]) == {-1, 0, 1}


def test_normalized_auc_of_known_curves():
    assert normalized_auc([0, 0.5, 1], [100, 50, 0]) == pytest.approx(0.5)
    # unordered, uneven steps: area 0.05 over a range of 0.5
    assert normalized_auc([0.5, 0, 0.1], [0, 100, 0]) == pytest.approx(0.1)
    assert np.isnan(normalized_auc([0], [100]))
    table = head_ablation_table({"m": _ablation_rows(CURVES)}, BOOT, {})
    a = head_ablation_auc(table).set_index(["setting", "seed"])
    assert a.loc[("localization", -1), "auc"] == pytest.approx(0.5)  # linear 1 -> 0
    assert a.loc[("lowest", -1), "auc"] == pytest.approx(0.1)
    assert a.loc[("random", 0), "auc"] == pytest.approx(0.6)
    assert a.loc[("random", 1), "auc"] == pytest.approx(0.4)
    mean = a.loc[("random", -1)]
    assert mean["auc"] == pytest.approx(0.5) and mean["auc_std"] == pytest.approx(0.1)
    assert mean["n_seeds"] == 2


def _known_heads(n_layers: int, n_heads: int, shift: float = 0.0) -> pd.DataFrame:
    """One pair per task; head (l, h) has MF (l * n_heads + h) / 20 - 0.3 (+ shift for binary)."""
    rows = []
    for task, s in (("localization", 0.0), ("binary", shift)):
        mf = {
            (la, h): (la * n_heads + h) / 20 - 0.3 + s
            for la in range(n_layers)
            for h in range(n_heads)
        }
        rows += _pair("a", task, 4, 2, {k: 4 - 2 * v for k, v in mf.items()})
    return head_scores(pd.DataFrame(rows), 0.25, BOOT)


def test_heatmaps_show_the_table(tmp_path):
    from vlmloc.figures.head_figures import head_grid, mediation_heatmaps, save

    heads = {"toy": _known_heads(4, 3, 0.1), "big": _known_heads(2, 5)}
    fig = mediation_heatmaps(heads, {"toy": "", "big": "llava-1.5-13b"})
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4
    expected_panels = [(m, t) for m in heads for t in ("localization", "binary")]
    for ax, (model, task) in zip(panels, expected_panels, strict=True):
        h = heads[model][heads[model]["task"] == task]
        expected = h.pivot(index="layer", columns="head", values="mf_mean").to_numpy()
        np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), expected)
        vmin, vmax = ax.images[0].get_clim()
        assert vmin == -vmax and vmax == pytest.approx(np.abs(expected).max())  # centred at 0
    assert panels[0].images[0].get_array()[3, 2] == pytest.approx(11 / 20 - 0.3)
    assert panels[0].get_title().startswith("toy: localization")
    assert panels[2].get_title().startswith("llava-1.5-13b")
    assert head_grid(heads["toy"], "binary")[0, 0] == pytest.approx(-0.2)
    save(fig, tmp_path / "f.png", tmp_path / "f.pdf")
    assert (tmp_path / "f.png").stat().st_size > 10_000
    assert (tmp_path / "f.pdf").stat().st_size > 3_000


def test_sparsity_figure_sorts_abs_mf():
    from vlmloc.figures.head_figures import mediation_sparsity_figure

    heads = _known_heads(4, 4)
    fig = mediation_sparsity_figure({"toy": heads})
    lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata()) > 2]  # not the marks
    mf = heads.loc[heads["task"] == "localization", "mf_mean"].to_numpy()
    np.testing.assert_allclose(lines[0].get_ydata(), np.sort(np.abs(mf))[::-1])
    assert "top 1% carry" in lines[0].get_label()
    plt.close(fig)


def test_ablation_figure_draws_the_table_with_its_auc():
    from vlmloc.figures.head_figures import head_ablation_figure

    table = head_ablation_table({"m": _ablation_rows(CURVES)}, BOOT, {"m": "llava-1.5-7b"})
    fig = head_ablation_figure(table, head_ablation_auc(table))
    ax = fig.axes[0]
    lines = {ln.get_label().split(" (")[0]: ln for ln in ax.get_lines()}
    np.testing.assert_allclose(lines["Localization-critical"].get_ydata(), [100, 75, 50, 25, 0])
    np.testing.assert_allclose(lines["Localization-critical"].get_xdata(), [0, 25, 50, 75, 100])
    # random: the mean over the two seeds
    np.testing.assert_allclose(lines["Random"].get_ydata(), [100, 40, 20])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Localization-critical (AUC 0.50)" in labels
    assert "Random (AUC 0.50 ± 0.10)" in labels
    assert ax.get_title() == "llava-1.5-7b"
    plt.close(fig)


def test_no_pair_at_all_gives_an_empty_ranking():
    """An empty probing subset (the mediation job writes no rows, or only excluded ones) ranks no
    head, and the tables and figures still draw."""
    from vlmloc.experiments.heads_summary import head_scores, mediation_sparsity

    for rows in (
        pd.DataFrame(columns=["sample_id", "condition", "task"]),
        pd.DataFrame(
            {"sample_id": ["a", "b"], "condition": ["excluded"] * 2, "task": ["none"] * 2}
        ),
    ):
        heads = head_scores(rows, 0.25)
        assert heads.empty and list(heads.columns)[:3] == ["task", "layer", "head"]
        assert mediation_sparsity({"m": heads}, {"m": ""}).empty
