"""Per-head mediation and head-ablation tables and figures from rows built by hand (what each
number must be)."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from vlmloc.experiments.head_ranking import head_scores, lowest, pair_mf, ranking, top_k
from vlmloc.paper import MEDIATION_OVERLAP, PAPER_MODELS
from vlmloc.tables.head_ablation import (
    head_ablation_auc,
    head_ablation_contrasts,
    head_ablation_table,
    normalized_auc,
    per_sample_auc,
)
from vlmloc.tables.mediation import (
    mediation_overlap,
    mediation_sparsity,
    mediation_statistics,
    overlap_p,
)

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
    assert h.loc[(0, 0), "mf_median"] == pytest.approx(0.75)
    # the log-gap shares: log(4/3) / log 2 and log(10/5) / log 2 = 1
    assert h.loc[(0, 0), "mf_log"] == pytest.approx((math.log(4 / 3) / math.log(2) + 1) / 2)
    assert h.loc[(1, 0), "mf_log"] == pytest.approx(math.log(4 / 6) / math.log(2))
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


def test_one_pair_with_a_tiny_denominator_moves_the_mean_not_the_robust_statistics():
    """Pair z's patched perplexity is 50x its base: MF -24.5, which drags the mean of head
    (0, 0) far below zero; the median and the bounded log share hardly move, and the log share
    of every pair stays in [-1, 1]."""
    rows = []
    for i in range(9):
        rows += _pair(f"p{i}", "localization", 4, 2, {(0, 0): 3.0, (0, 1): 4.0})
    rows += _pair("z", "localization", 4, 2, {(0, 0): 53.0, (0, 1): 4.0})
    h = head_scores(pd.DataFrame(rows), 0.25, BOOT).set_index(["layer", "head"])
    assert h.loc[(0, 0), "mf_mean"] == pytest.approx((9 * 0.5 - 24.5) / 10)  # -2.0
    assert h.loc[(0, 0), "mf_median"] == pytest.approx(0.5)
    # 9 pairs' log share log(4/3)/log 2 = 0.415 and one clipped to -1
    assert h.loc[(0, 0), "mf_log"] == pytest.approx((9 * math.log(4 / 3) / math.log(2) - 1) / 10)
    pm = pair_mf(pd.DataFrame(rows), 0.25)
    assert pm["mf_log"].between(-1, 1).all() and pm["mf"].min() == pytest.approx(-24.5)
    # by the mean (0, 0) is the least important head, by the median and the log share the top
    assert ranking(h.reset_index(), "localization")[0] == (0, 1)
    assert ranking(h.reset_index(), "localization", "median")[0] == (0, 0)
    assert ranking(h.reset_index(), "localization", "log")[0] == (0, 0)
    assert lowest(h.reset_index(), "localization", "median")[0] == (0, 1)
    with pytest.raises(ValueError, match="unknown MF statistic"):
        ranking(h.reset_index(), "localization", "mode")


def _pairs_with(values: np.ndarray, task: str = "localization") -> pd.DataFrame:
    """A ``pair_mf`` table whose per-pair MF (pairs x heads) is ``values``: base perplexity 4,
    source 2, and a patched perplexity that closes the share MF of the LOG gap (so ``mf_log`` is
    MF clipped to [-1, 1])."""
    recs = []
    for i, row in enumerate(np.atleast_2d(values)):
        for j, mf in enumerate(row):
            nll = math.log(4) - mf * math.log(2)
            recs.append(
                {
                    "task": task,
                    "sample_id": f"p{i}",
                    "layer": j,
                    "head": 0,
                    "nll_base": math.log(4),
                    "nll_src": math.log(2),
                    "nll": nll,
                    "kept": True,
                    "mf": mf,
                    "mf_log": float(np.clip((math.log(4) - nll) / math.log(2), -1, 1)),
                }
            )
    return pd.DataFrame(recs)


def _heads_of(pm: pd.DataFrame) -> pd.DataFrame:
    g = pm.groupby(["task", "layer", "head"])
    return (
        g["mf"]
        .agg(mf_mean="mean", mf_median="median")
        .join(g["mf_log"].agg(mf_log="mean"))
        .reset_index()
        .assign(
            mf_avg_ppl=lambda d: d["mf_mean"],
            n_pairs=g.size().to_numpy(),
            n_pairs_total=g.size().to_numpy(),
            n_excluded=0,
        )
    )


NULL = {"resamples": 400, "level": 0.95, "seed": 0, "permutations": 400}


def test_sparsity_beats_the_permutation_null_only_when_a_head_is_consistently_large():
    """16 heads, 30 pairs of noise (sd 0.3). Alone, the top 3 heads carry about 40% of |MF|,
    so "top 3 carry >= 30%" passes on noise. The head-permutation null says it is chance; one
    head at +0.8 in every pair beats it."""
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.3, (30, 16))
    sparse = noise.copy()
    sparse[:, 5] += 0.8
    out = {}
    for name, values in (("noise", noise), ("sparse", sparse)):
        pm = _pairs_with(values)
        s = mediation_sparsity({"m": _heads_of(pm)}, {"m": pm}, {"m": ""}, NULL)
        out[name] = s.set_index("statistic").loc["mean"]
        assert list(s["statistic"]) == ["mean", "median", "avg_ppl", "log"]
    assert out["noise"]["share_top3"] > 0.3  # what the old test asked: passes on noise
    assert out["noise"]["share_top3_p"] > 0.05 and out["sparse"]["share_top3_p"] < 0.01
    assert 0.3 < out["noise"]["share_top3_null"] < 0.5
    for r in out.values():
        assert r["share_top3_lo"] <= r["share_top3"] <= r["share_top3_hi"]
        assert 1 / (NULL["permutations"] + 1) <= r["share_top3_p"] <= 1
    # the sparse head leads, its share above the null's
    assert out["sparse"]["share_top3"] > out["sparse"]["share_top3_null"] + 0.1


def test_sparsity_shares_on_a_known_vector():
    mf = np.array([-4, 3, 2, 1] + [0.0625] * 96)  # 100 heads, total |MF| 16
    pm = _pairs_with(np.vstack([mf, mf]))
    heads = _heads(list(mf))
    s = mediation_sparsity({"m": heads}, {"m": pm}, {"m": "llava-1.5-7b"}, NULL)
    s = s.set_index("statistic").loc["mean"]
    assert (s["k_top1pct"], s["k_top5pct"], s["k_top10pct"]) == (1, 5, 10)
    assert s["share_top1pct"] == pytest.approx(4 / 16)
    assert s["share_top3"] == pytest.approx(9 / 16)
    assert s["share_top5pct"] == pytest.approx(10.0625 / 16)
    assert s["share_top10pct"] == pytest.approx(10.375 / 16)
    assert s["share_negative"] == pytest.approx(0.01)
    assert (s["n_pairs"], s["n_pairs_total"], s["paper_name"]) == (5, 7, "llava-1.5-7b")
    # both pairs agree, so every bootstrap draw is the observed map
    assert s["share_top3_lo"] == pytest.approx(9 / 16) == s["share_top3_hi"]
    assert s["share_top3_p"] < 0.01 and s["permutations"] == NULL["permutations"]
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
    heads = heads.assign(mf_median=heads["mf_mean"], mf_avg_ppl=heads["mf_mean"], mf_log=0.0)
    o = mediation_overlap({"m": heads, "t": heads}, names)
    assert set(o["statistic"]) == {"mean", "median", "avg_ppl", "log"}
    o = o[o["statistic"] == "mean"].set_index(["model", "k_requested"])
    assert o.loc[("m", 10), "shared"] == 3
    assert o.loc[("m", 10), "expected_chance"] == pytest.approx(5)  # 10 * 10 / 20
    # hypergeometric: P(X >= 3) and P(X <= 3) for two random 10-subsets of 20
    total = math.comb(20, 10)
    below = sum(math.comb(10, i) * math.comb(10, 10 - i) for i in range(3))
    assert o.loc[("m", 10), "p_more"] == pytest.approx(1 - below / total)
    assert o.loc[("m", 10), "p_less"] == pytest.approx(
        (below + math.comb(10, 3) * math.comb(10, 7)) / total
    )
    top50 = o.loc[("m", 50)]  # capped at the 20 heads there are
    assert (top50["k"], top50["shared"], top50["expected_chance"]) == (20, 20, 20)
    assert (o.loc[("m", 10), "paper_shared"], top50["paper_shared"]) == (1, 18)
    # the paper's InternVL: 18 of the top 50 of 1,152 heads, 8x the 2.2 of chance
    assert top50["paper_n_heads"] == 1152
    assert top50["paper_expected_chance"] == pytest.approx(2500 / 1152)
    assert top50["paper_p_more"] < 1e-10
    assert np.isnan(o.loc[("t", 10), "paper_shared"])


def test_overlap_p_values_of_known_cases():
    # the toy LLaVA's 9 of its top 10 of 16 heads (issue 36: P(>= 9) = 0.008)
    assert overlap_p(16, 10, 9)[0] == pytest.approx(0.00762, abs=1e-5)
    for n, k in ((16, 10), (1024, 50)):
        more, less = zip(*(overlap_p(n, k, x) for x in range(k + 1)), strict=True)
        assert more[0] == pytest.approx(1) and less[-1] == pytest.approx(1)
        # P(X >= x) + P(X <= x - 1) = 1
        assert all(m + ls == pytest.approx(1) for m, ls in zip(more[1:], less[:-1], strict=True))


def test_overlap_needs_both_tasks_scored():
    heads = pd.concat([_heads([0.5, 0.2]), _heads([np.nan, np.nan], "binary")])
    assert np.isnan(mediation_overlap({"m": heads}, {}).loc[0, "shared"])


def test_statistics_table_compares_each_ranking_with_the_mean():
    rows = []
    for i in range(9):
        rows += _pair(f"p{i}", "localization", 4, 2, {(0, 0): 3.0, (0, 1): 4.0, (1, 0): 3.6})
    rows += _pair("z", "localization", 4, 2, {(0, 0): 53.0, (0, 1): 4.0, (1, 0): 3.6})
    heads = head_scores(pd.DataFrame(rows), 0.25, BOOT)
    t = mediation_statistics({"m": heads}, {"m": ""}, rank_by="median", k=2)
    t = t.set_index("statistic")
    assert t.loc["mean", "spearman_vs_mean"] == pytest.approx(1)
    assert t.loc["mean", "top_head"] == "l1.h0" and t.loc["median", "top_head"] == "l0.h0"
    # mean: (1,0) 0.2, (0,1) 0, (0,0) -2.0; median: (0,0) 0.5, (1,0) 0.2, (0,1) 0
    assert t.loc["median", "spearman_vs_mean"] == pytest.approx(-0.5)
    assert t.loc["median", "top_k_shared_with_mean"] == 1  # {(1,0), (0,1)} vs {(0,0), (1,0)}
    assert t.loc["median", "lowest_head"] == "l0.h1" and t.loc["mean", "lowest_head"] == "l0.h1"
    assert t["ranks_head_ablation"].to_dict() == {
        "mean": False,
        "median": True,
        "avg_ppl": False,
        "log": False,
    }


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


def _sample_rows(scores: dict, variant=("zero", "post_image"), well=None) -> pd.DataFrame:
    """Scored rows with one score per sample: ``scores[(setting, seed)][proportion]`` is a list
    over samples (the baseline under ("baseline", -1)); ``well`` the same shape of 0/1."""
    rows = []
    for (setting, seed), curve in scores.items():
        for p, values in curve.items():
            for i, v in enumerate(values):
                ok = 1.0 if well is None else well[(setting, seed)][p][i]
                rows.append(
                    {
                        "sample_id": f"s{i}",
                        "condition": f"{setting}.{seed}.{p}.{variant}",
                        "setting": setting,
                        "proportion": p,
                        "n_heads": int(p * 16),
                        "seed": seed,
                        "ablation": variant[0],
                        "positions": variant[1],
                        "task": "localization",
                        "loc_score": v,
                        "well_formed": ok,
                        "status": "ok",
                    }
                )
    return pd.DataFrame(rows)


def test_a_flat_curve_scores_its_baseline_not_one():
    """The AUC is not relative to the unmodified model: a curve that never drops scores the
    baseline's accuracy (the table's ``baseline`` column)."""
    n = 10
    flat = [1.0] * 6 + [0.0] * 4  # 60% at every share
    rows = _sample_rows({("baseline", -1): {0.0: flat}, ("lowest", -1): {0.1: flat, 0.5: flat}})
    table = head_ablation_table({"m": rows}, BOOT, {})
    a = head_ablation_auc(table, {"m": rows}, BOOT).iloc[0]
    assert a["auc"] == pytest.approx(0.6) and a["baseline"] == pytest.approx(0.6)
    assert len(table) == 3 and (table["n"] == n).all()


def test_auc_intervals_and_paired_differences_of_known_samples():
    """10 samples. The critical ranking loses sample i's box for i < 8 at the first share; the
    low-importance heads lose none; two random seeds lose samples 0-4 or none. Each sample's AUC
    averages to the table's AUC; the paired difference critical - lowest is negative with an
    interval below 0; an identical control gives 0, [0, 0] and p = 1."""
    base = [1.0] * 10
    crit = [0.0] * 8 + [1.0] * 2
    half = [0.0] * 5 + [1.0] * 5
    scores = {
        ("baseline", -1): {0.0: base},
        ("localization", -1): {0.25: crit, 0.5: crit},
        ("classification", -1): {0.25: base, 0.5: base},
        ("lowest", -1): {0.25: base, 0.5: base},
        ("random", 0): {0.25: half, 0.5: half},
        ("random", 1): {0.25: base, 0.5: base},
    }
    rows = _sample_rows(scores)
    table = head_ablation_table({"m": rows}, BOOT, {})
    auc = head_ablation_auc(table, {"m": rows}, BOOT).set_index(["setting", "seed"])
    per = per_sample_auc(rows)
    for (setting, seed), r in auc.iterrows():
        if seed >= 0 or setting != "random":
            mine = per[(per["setting"] == setting) & (per["seed"] == seed)]["auc"]
            assert mine.mean() == pytest.approx(r["auc"]), (setting, seed)
        assert r["auc_lo"] <= r["auc"] + 1e-12 and r["auc"] <= r["auc_hi"] + 1e-12
    # critical: (1 + 0.2) / 2 over [0, 0.25], then 0.2 over [0.25, 0.5]: 0.6 * 0.5 + 0.2 * 0.5
    assert auc.loc[("localization", -1), "auc"] == pytest.approx(0.4)
    assert auc.loc[("random", -1), "auc"] == pytest.approx((0.625 + 1) / 2)
    c = head_ablation_contrasts({"m": rows}, BOOT, {"m": "llava-1.5-7b"})
    c = c.set_index(["setting", "versus"])
    assert list(c.index) == [
        ("localization", "lowest"),
        ("localization", "random"),
        ("classification", "lowest"),
        ("classification", "random"),
    ]
    r = c.loc[("localization", "lowest")]
    assert r["delta_auc"] == pytest.approx(-0.6) and r["delta_hi"] < 0 and r["p"] < 0.01
    assert (r["n"], r["n_seeds"], r["paper_name"]) == (10, 1, "llava-1.5-7b")
    same = c.loc[("classification", "lowest")]
    assert (same["delta_auc"], same["delta_lo"], same["delta_hi"], same["p"]) == (0, 0, 0, 1)
    # random: the seeds are resampled too, so its interval spans both seeds' curves
    rnd = c.loc[("localization", "random")]
    assert rnd["n_seeds"] == 2 and rnd["delta_auc"] == pytest.approx(0.4 - 0.8125)
    assert rnd["delta_lo"] < -0.6 + 1e-9 and rnd["delta_hi"] > -0.4


def test_variants_get_their_own_curves_and_the_format_column():
    """Two ablations share one baseline; answers out of the family's format are counted apart
    from wrong boxes, and the accuracy of the well-formed ones is reported."""
    base = [1.0] * 4
    broken = {("baseline", -1): {0.0: [1] * 4}, ("lowest", -1): {0.5: [0, 0, 0, 1]}}
    zero = _sample_rows(
        {("baseline", -1): {0.0: base}, ("lowest", -1): {0.5: [0.0, 0.0, 1.0, 1.0]}},
        well=broken,
    )
    mean = _sample_rows({("lowest", -1): {0.5: [1.0] * 4}}, variant=("mean", "post_image"))
    rows = pd.concat([zero, mean], ignore_index=True)
    t = head_ablation_table({"m": rows}, BOOT, {})
    assert list(zip(t["ablation"], t["proportion"], strict=True)) == [
        ("zero", 0.0),
        ("zero", 0.5),
        ("mean", 0.0),
        ("mean", 0.5),
    ]
    z = t[(t["ablation"] == "zero") & (t["proportion"] == 0.5)].iloc[0]
    assert (z["accuracy"], z["format_broken"], z["n_well_formed"]) == (50, 75, 1)
    assert z["acc_well_formed"] == 100  # the one well-formed answer is right
    m = t[(t["ablation"] == "mean") & (t["proportion"] == 0.5)].iloc[0]
    assert (m["accuracy"], m["format_broken"]) == (100, 0)
    assert t.loc[t["proportion"] == 0, "accuracy"].eq(100).all()  # the shared baseline
    # rows scored before the format column existed: unknown, not 0
    old = head_ablation_table({"m": zero.drop(columns=["well_formed"])}, BOOT, {})
    assert old["format_broken"].isna().all()


@pytest.mark.parametrize(
    ("family", "good", "bad"),
    [
        ("internvl", "<box>[[125, 333, 500, 533]]</box>", "<box>[125, 333, 500, 533]]</box>"),
        ("llava", " [0.12, 0.38, 0.50, 0.53]", "0.12, 0.38, 0.50, 0.53]"),
    ],
)
def test_a_box_in_a_broken_format_is_not_well_formed_though_it_parses(family, good, bad):
    from vlmloc.models import ADAPTERS
    from vlmloc.scoring import score_answer

    parser = ADAPTERS[family].parser()
    row = {"width": 640, "height": 480, "bbox_x": 80, "bbox_y": 160, "bbox_w": 240, "bbox_h": 96}
    ok, broken = (score_answer(parser, "localization", a, row, ["x"]) for a in (good, bad))
    assert ok["well_formed"] == 1.0 and ok["status"] == "ok"
    assert broken["well_formed"] == 0.0 and broken["status"] == "ok"  # the lenient parser reads it
    assert np.isnan(score_answer(parser, "binary", "Yes", row, ["x"])["well_formed"])


def test_head_order_follows_the_ranking_statistic():
    from vlmloc.experiments.head_ablation import head_order

    rows = []
    for i in range(9):
        rows += _pair(f"p{i}", "localization", 4, 2, {(0, 0): 3.0, (0, 1): 4.0, (1, 0): 3.6})
    rows += _pair("z", "localization", 4, 2, {(0, 0): 53.0, (0, 1): 4.0, (1, 0): 3.6})
    heads = head_scores(pd.DataFrame(rows), 0.25, BOOT)
    assert head_order(heads, "localization")[0] == (1, 0)
    assert head_order(heads, "localization", statistic="median")[0] == (0, 0)
    assert head_order(heads, "lowest", statistic="median")[0] == (0, 1)
    assert head_order(heads, "lowest", statistic="mean")[0] == (0, 1)


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


def test_sparsity_figure_draws_the_null_and_the_test():
    from vlmloc.figures.head_figures import mediation_sparsity_figure

    rng = np.random.default_rng(1)
    values = rng.normal(0, 0.3, (30, 16))
    values[:, 5] += 0.8
    pm = _pairs_with(values)
    heads = _heads_of(pm)
    s = mediation_sparsity({"m": heads}, {"m": pm}, {"m": ""}, NULL)
    fig = mediation_sparsity_figure({"m": heads}, {"m": pm}, s, NULL)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata()) > 2}
    observed = next(ln for name, ln in lines.items() if "top 3 carry" in name)
    null = lines["localization: head-permutation null"]
    r = s[s["statistic"] == "mean"].iloc[0]
    assert f"p = {r['share_top3_p']:.2g}" in observed.get_label()
    # the consistently large head stands above the null's largest
    assert observed.get_ydata()[0] > 2 * null.get_ydata()[0]
    assert np.all(np.diff(null.get_ydata()) <= 1e-12)  # sorted from the largest
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
    assert ax.get_title() == "llava-1.5-7b: zeroed after the image (paper)"
    plt.close(fig)


def test_ablation_figure_gives_intervals_differences_and_the_format_panel():
    from vlmloc.figures.head_figures import head_ablation_figure

    base, crit = [1.0] * 10, [0.0] * 8 + [1.0] * 2
    scores = {
        ("baseline", -1): {0.0: base},
        ("localization", -1): {0.25: crit, 0.5: crit},
        ("lowest", -1): {0.25: base, 0.5: base},
    }
    well = {k: {p: [1.0] * 10 for p in v} for k, v in scores.items()}
    well[("lowest", -1)][0.5] = [0.0] * 10  # the control breaks the format
    rows = pd.concat(
        [
            _sample_rows(scores, well=well),
            _sample_rows({k: v for k, v in scores.items() if k[0] != "baseline"}, ("mean", "all")),
        ]
    )
    table = head_ablation_table({"m": rows}, BOOT, {})
    fig = head_ablation_figure(
        table,
        head_ablation_auc(table, {"m": rows}, BOOT),
        head_ablation_contrasts({"m": rows}, BOOT, {}),
    )
    axes = [ax for ax in fig.axes if ax.get_lines()]
    assert len(axes) == 4  # two variants, each accuracy and format
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    crit = next(x for x in labels if x.startswith("Localization-critical"))
    assert "AUC 0.40 [" in crit and "ΔAUC vs low-imp. -0.60 [" in crit
    fmt = {ln.get_label(): ln.get_ydata() for ln in axes[1].get_lines()}
    np.testing.assert_allclose(fmt["Low-importance"], [0, 0, 100])
    np.testing.assert_allclose(fmt["Localization-critical"], [0, 0, 0])
    assert axes[2].get_title() == "m: mean-ablated at every position"
    plt.close(fig)


def test_no_pair_at_all_gives_an_empty_ranking():
    """An empty probing subset (the mediation job writes no rows, or only excluded ones) ranks no
    head, and the tables and figures still draw."""
    for rows in (
        pd.DataFrame(columns=["sample_id", "condition", "task"]),
        pd.DataFrame(
            {"sample_id": ["a", "b"], "condition": ["excluded"] * 2, "task": ["none"] * 2}
        ),
    ):
        heads = head_scores(rows, 0.25)
        assert heads.empty and list(heads.columns)[:3] == ["task", "layer", "head"]
        pm = pair_mf(rows, 0.25)
        assert pm.empty
        assert mediation_sparsity({"m": heads}, {"m": pm}, {"m": ""}).empty
        assert mediation_statistics({"m": heads}, {"m": ""}).empty


def test_head_ablation_tables_of_an_empty_subset_are_empty():
    """An empty probing subset: the head-ablation job writes a frame with no rows and, from the
    experiment layer, no columns either; its curves, AUCs and contrasts are empty, not a crash
    (the CI failure of 2026-12-07, KeyError 'setting')."""
    for rows in (
        pd.DataFrame(),
        pd.DataFrame(columns=["sample_id", "condition", "task", "loc_score"]),
    ):
        by = {"m": rows}
        assert per_sample_auc(rows).empty
        curves = head_ablation_table(by, {"resamples": 10}, {"m": ""})
        assert curves.empty
        assert head_ablation_auc(curves, by, {"resamples": 10}).empty
        assert head_ablation_contrasts(by, {"resamples": 10}, {"m": ""}).empty


def test_head_ablation_runs_every_variant_beside_one_baseline(adapters, tmp_path):
    """ablation and positions as lists: one baseline, every (ablation, positions) curve with
    its own condition names and params, zeroed where it says; rank_by orders the heads."""
    from test_experiment_layer import CATS, MAX_NEW, _samples

    from vlmloc.experiments import ShardJob, get_experiment
    from vlmloc.experiments.mediation import every_head
    from vlmloc.runner import Runner

    a = adapters["llava"]
    heads = every_head(a)
    rows = []
    for task in ("localization", "binary"):
        mf = {h: (i % 5) / 5 - 0.3 for i, h in enumerate(heads)}
        rows += _pair("p", task, 4, 2, {h: 4 - 2 * v for h, v in mf.items()})
    head_scores(pd.DataFrame(rows), 0.25, BOOT).to_parquet(tmp_path / "heads.parquet")
    settings = {
        "settings": ["localization", "lowest", "random"],
        "proportions": [0.25],
        "random_seeds": [0],
        "positions": ["post_image", "all"],
        "pool": "same",
        "ablation": ["zero"],
        "rank_by": "median",
    }
    job = ShardJob(
        a,
        Runner(a, progress=False),
        _samples(tmp_path),
        CATS,
        settings,
        MAX_NEW,
        None,
        present=None,
        progress=False,
        upstream={"mediation": str(tmp_path / "heads.parquet")},
    )
    conds = list(get_experiment("head_ablation").conditions(job))
    names = [c.name for c in conds]
    assert len(names) == len(set(names)) == 1 + 3 * 2
    assert names[0] == "baseline" and "localization_p0.25" in names
    assert "localization_p0.25_zero_all" in names and "random_s0_p0.25_zero_all" in names
    for c in conds[1:]:
        assert c.params["rank_by"] == "median" and c.intervention.positions == c.params["positions"]
        assert c.intervention.touches_prefix == (c.params["positions"] == "all")
        assert c.intervention.means is None
    n = len(heads) // 4
    by = {(c.params["setting"], c.params["positions"]): c.intervention.heads for c in conds[1:]}
    assert by[("localization", "post_image")] == by[("localization", "all")]
    med = pd.read_parquet(tmp_path / "heads.parquet")
    assert by[("localization", "all")] == sorted(ranking(med, "localization", "median")[:n])
