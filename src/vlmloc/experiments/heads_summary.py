"""Tables of the per-head causal mediation (paper sec. 3.3.2, Fig. 4 / 14) and of the cumulative
head ablation (sec. 3.3.3, Fig. 5 / 15), computed from rows.

Mediation: per (sample, task) pair the base run (object removed), the source run (original
image) and one patched run per head give mean negative log-probabilities of the answer's content
tokens (``nll``, a log-perplexity). With P = exp(nll) the Mediation Fraction of a head is
MF = (P_base - P_patched) / (P_base - P_src) (paper eq. 1). A pair whose base and source barely
differ (|nll_base - nll_src| < ``min_log_gap``) would divide by almost zero, so it is dropped and
counted. Every head's MF is averaged over the kept pairs, with a 95% bootstrap interval over them.

Head ablation: localization accuracy (mean localization score, %) per setting, seed and share of
heads zeroed; every curve starts at the unmodified model (the baseline condition).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..paper import MEDIATION_OVERLAP
from ..scoring import EXCLUDED
from .summary import bootstrap_ci

TASKS = ("localization", "binary")  # binary: the paper's classification task for mediation
PAIR_COLUMNS = ["task", "sample_id", "nll_base", "nll_src", "log_gap", "kept"]
HEAD_COLUMNS = [
    "task",
    "layer",
    "head",
    "mf_mean",
    "mf_lo",
    "mf_hi",
    "mf_avg_ppl",
    "n_pairs",
    "n_pairs_total",
    "n_excluded",
    "rank",
]
TOP_SHARES = (1, 5, 10)  # % of heads
SPARSITY_COLUMNS = [
    "model",
    "paper_name",
    "task",
    "n_heads",
    *[f"{x}_top{p}pct" for p in TOP_SHARES for x in ("k", "share")],
    "share_top3",
    "share_negative",
    "n_pairs",
    "n_pairs_total",
    "n_excluded",
]
OVERLAP_KS = (10, 50)
OVERLAP_COLUMNS = [
    "model",
    "paper_name",
    "k_requested",
    "k",
    "n_heads",
    "shared",
    "expected_chance",
    "paper_shared",
]

SETTING_ORDER = ("baseline", "localization", "classification", "lowest", "random")
CURVE_COLUMNS = [
    "model",
    "paper_name",
    "setting",
    "seed",
    "proportion",
    "n_heads",
    "accuracy",
    "acc_lo",
    "acc_hi",
    "n",
]
AUC_COLUMNS = [
    "model",
    "paper_name",
    "setting",
    "seed",
    "n_seeds",
    "auc",
    "auc_std",
    "proportion_min",
    "proportion_max",
    "n_points",
]


def _task_order(tasks) -> list[str]:
    tasks = list(dict.fromkeys(tasks))
    return [t for t in TASKS if t in tasks] + [t for t in tasks if t not in TASKS]


def _one_per_sample(rows: pd.DataFrame, condition: str) -> pd.Series:
    r = rows[rows["condition"] == condition]
    dup = r.loc[r.duplicated(["task", "sample_id"]), ["task", "sample_id"]]
    if len(dup):
        example = tuple(dup.iloc[0])
        raise ValueError(f"mediation rows: {len(dup)} duplicate {condition!r} rows, e.g. {example}")
    return r.set_index(["task", "sample_id"])["nll"]


def pairs(rows: pd.DataFrame, min_log_gap: float) -> pd.DataFrame:
    """One row per (task, sample): base and source nll, their gap and whether the pair is kept
    (|gap| >= ``min_log_gap``). Raises if a row of a pair lacks the pair's base or source row."""
    rows = rows[rows["condition"] != EXCLUDED]
    base, src = _one_per_sample(rows, "base"), _one_per_sample(rows, "source")
    out = pd.concat({"nll_base": base, "nll_src": src}, axis=1)
    keys = pd.MultiIndex.from_frame(rows[["task", "sample_id"]])
    # a patched run, or half a pair, without its partner
    missing = rows[~keys.isin(out.dropna().index)]
    if len(missing):
        task, sample, condition = missing[["task", "sample_id", "condition"]].iloc[0]
        raise ValueError(
            f"mediation rows: {len(missing)} rows lack their pair's base or source row, "
            f"e.g. sample {sample!r}, task {task!r}, condition {condition!r}"
        )
    out = out.reset_index()
    out["log_gap"] = out["nll_base"] - out["nll_src"]
    out["kept"] = out["log_gap"].abs() >= min_log_gap
    return out[PAIR_COLUMNS]


def _task_scores(m: pd.DataFrame, b: dict) -> pd.DataFrame:
    """One task's heads: mean MF over kept pairs with its interval, and the ratio of the mean
    perplexities (robust to a single pair's small denominator)."""
    g = m[m["kept"]].groupby(["layer", "head"])
    t = g[["mf", "p_base", "p_src", "p_patched"]].mean().rename(columns={"mf": "mf_mean"})
    t["mf_avg_ppl"] = (t["p_base"] - t["p_patched"]) / (t["p_base"] - t["p_src"])
    t["n_pairs"] = g.size()
    ci = {k: bootstrap_ci(v.to_numpy(), b["resamples"], b["level"], b["seed"]) for k, v in g["mf"]}
    t["mf_lo"], t["mf_hi"] = [ci[k][0] for k in t.index], [ci[k][1] for k in t.index]
    heads = m[["layer", "head"]].drop_duplicates().astype(int)
    # every head keeps its row; a task without kept pairs: NaN
    t = heads.merge(t.reset_index(), on=["layer", "head"], how="left")
    t["n_pairs"] = t["n_pairs"].fillna(0).astype(int)
    return t


def head_scores(
    rows: pd.DataFrame, min_log_gap: float, bootstrap: dict | None = None
) -> pd.DataFrame:
    """One row per (task, layer, head) of one model's mediation rows: mean MF over kept pairs with
    its percentile-bootstrap interval, the ratio of mean perplexities (``mf_avg_ppl``), kept and
    total pairs, samples excluded from the experiment, and the rank within the task (1 = highest
    mean MF; ties by layer, head). A task without a kept pair has NaN scores and ``n_pairs`` 0."""
    b = {"resamples": 1000, "level": 0.95, "seed": 0, **(bootstrap or {})}
    n_excluded = (
        int(rows.loc[rows["condition"] == EXCLUDED, "sample_id"].nunique()) if len(rows) else 0
    )
    if (
        not len(rows) or not (rows["condition"] != EXCLUDED).any()
    ):  # no pair at all (an empty probing subset)
        return pd.DataFrame(columns=HEAD_COLUMNS).assign(n_excluded=n_excluded)[HEAD_COLUMNS]
    p = pairs(rows, min_log_gap)
    patched = rows[~rows["condition"].isin(["base", "source", EXCLUDED])]
    m = patched[["task", "sample_id", "layer", "head", "nll"]].merge(p, on=["task", "sample_id"])
    m["p_base"], m["p_src"], m["p_patched"] = (np.exp(m[c]) for c in ("nll_base", "nll_src", "nll"))
    m["mf"] = (m["p_base"] - m["p_patched"]) / (m["p_base"] - m["p_src"])  # paper eq. 1
    parts = []
    for task in _task_order(m["task"]):
        t = _by_mf(_task_scores(m[m["task"] == task], b))
        t["rank"] = np.arange(1, len(t) + 1)
        t["task"], t["n_pairs_total"] = task, int((p["task"] == task).sum())
        parts.append(t)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=HEAD_COLUMNS)
    out["n_excluded"] = n_excluded
    out = out.sort_values(["task", "layer", "head"], key=_task_key)
    return out.reset_index(drop=True)[HEAD_COLUMNS]


def _task_key(col: pd.Series) -> pd.Series:
    if col.name != "task":
        return col
    return col.map({t: i for i, t in enumerate(TASKS)}).fillna(len(TASKS))


def _by_mf(t: pd.DataFrame) -> pd.DataFrame:
    """Highest mean MF first; ties by layer, head; NaN last."""
    order = ["mf_mean", "layer", "head"]
    return t.sort_values(order, ascending=[False, True, True], na_position="last")


def _task(heads: pd.DataFrame, task: str) -> pd.DataFrame:
    t = heads[heads["task"] == task]
    if t.empty:
        have = sorted(heads["task"].unique())
        raise ValueError(f"no head scores for task {task!r} (have {have})")
    return t


def ranking(heads: pd.DataFrame, task: str) -> list[tuple[int, int]]:
    """(layer, head) of one task, highest mean MF first (ties by layer, head; NaN last)."""
    t = _by_mf(_task(heads, task))
    return [(int(a), int(b)) for a, b in zip(t["layer"], t["head"], strict=True)]


def lowest(heads: pd.DataFrame, task: str) -> list[tuple[int, int]]:
    """(layer, head) of one task, MF closest to zero first: the low-importance control."""
    t = _task(heads, task).assign(_abs=lambda d: d["mf_mean"].abs())
    t = t.sort_values(["_abs", "layer", "head"], na_position="last")
    return [(int(a), int(b)) for a, b in zip(t["layer"], t["head"], strict=True)]


def top_k(n_heads: int, percent: float) -> int:
    """Heads in the top ``percent`` %: at least one."""
    return max(1, math.ceil(n_heads * percent / 100))


def top_share(mf: np.ndarray, k: int) -> float:
    """Share of the total |MF| carried by the ``k`` heads of largest |MF|."""
    a = np.sort(np.abs(np.asarray(mf, dtype=float)[~np.isnan(mf)]))[::-1]
    return float(a[:k].sum() / a.sum()) if len(a) and a.sum() > 0 else np.nan


def mediation_sparsity(
    heads_by_model: dict[str, pd.DataFrame], paper_names: dict[str, str]
) -> pd.DataFrame:
    """Per model and task: how concentrated |MF| is (share carried by the top 1/5/10% and top 3
    heads), the share of heads with a negative mean MF, and the pairs kept."""
    recs = []
    for model, heads in heads_by_model.items():
        for task in _task_order(heads["task"]):
            t = heads[heads["task"] == task]
            mf = t["mf_mean"].to_numpy(dtype=float)
            finite = mf[~np.isnan(mf)]
            name = paper_names.get(model, "")
            rec = {"model": model, "paper_name": name, "task": task, "n_heads": len(t)}
            for p in TOP_SHARES:
                rec[f"k_top{p}pct"] = top_k(len(t), p)
                rec[f"share_top{p}pct"] = top_share(mf, rec[f"k_top{p}pct"])
            rec["share_top3"] = top_share(mf, 3)
            rec["share_negative"] = float((finite < 0).mean()) if len(finite) else np.nan
            rec.update({c: int(t[c].max()) for c in ("n_pairs", "n_pairs_total", "n_excluded")})
            recs.append(rec)
    return pd.DataFrame(recs, columns=SPARSITY_COLUMNS)


def mediation_overlap(
    heads_by_model: dict[str, pd.DataFrame], paper_names: dict[str, str]
) -> pd.DataFrame:
    """Per model and k: heads in both the localization and the classification (binary) top-k by
    mean MF, the overlap two random k-subsets would share on average (k * k / N), and the
    paper's count. k is capped at the number of heads."""
    recs = []
    for model, heads in heads_by_model.items():
        # both tasks scored, else no overlap to count
        scored = all(heads.loc[heads["task"] == t, "mf_mean"].notna().any() for t in TASKS)
        n = int(heads.groupby("task").size().min()) if len(heads) else 0
        name = paper_names.get(model, "")
        for k_req in OVERLAP_KS:
            k = min(k_req, n)
            top = [set(ranking(heads, t)[:k]) for t in TASKS] if scored else None
            recs.append(
                {
                    "model": model,
                    "paper_name": name,
                    "k_requested": k_req,
                    "k": k,
                    "n_heads": n,
                    "shared": len(top[0] & top[1]) if scored else np.nan,
                    "expected_chance": k * k / n if n else np.nan,
                    "paper_shared": MEDIATION_OVERLAP.get(name, {}).get(k_req, np.nan),
                }
            )
    return pd.DataFrame(recs, columns=OVERLAP_COLUMNS)


def _curve_points(rows: pd.DataFrame, b: dict) -> pd.DataFrame:
    """Accuracy per (setting, seed, proportion) with its interval over samples."""
    recs = []
    keys = ["setting", "seed", "proportion"]
    for (setting, seed, proportion), g in rows.groupby(keys, sort=False):
        score = 100 * g.groupby("sample_id")["loc_score"].mean().astype(float)
        lo, hi = bootstrap_ci(score.to_numpy(), b["resamples"], b["level"], b["seed"])
        recs.append(
            {
                "setting": setting,
                "seed": int(seed),
                "proportion": float(proportion),
                "n_heads": int(g["n_heads"].max()),
                "accuracy": float(score.mean()),
                "acc_lo": lo,
                "acc_hi": hi,
                "n": len(score),
            }
        )
    return pd.DataFrame(recs, columns=CURVE_COLUMNS[2:])


def _with_baseline(points: pd.DataFrame) -> pd.DataFrame:
    """Each (setting, seed) curve with the unmodified model as its point at proportion 0."""
    base = points[points["setting"] == "baseline"]
    curves = points[points["setting"] != "baseline"]
    if base.empty or curves.empty:
        return points
    parts = [curves]
    starts = curves.loc[curves["proportion"] == 0, ["setting", "seed"]]
    for setting, seed in curves[["setting", "seed"]].drop_duplicates().itertuples(index=False):
        if not ((starts["setting"] == setting) & (starts["seed"] == seed)).any():
            parts.append(base.iloc[:1].assign(setting=setting, seed=seed))
    return pd.concat(parts, ignore_index=True)


def head_ablation_table(
    rows_by_model: dict[str, pd.DataFrame], bootstrap: dict | None, paper_names: dict[str, str]
) -> pd.DataFrame:
    """One row per model, setting, seed (-1 unless random) and proportion of heads zeroed:
    localization accuracy (%) with its bootstrap interval over samples. The baseline is each
    curve's first point (proportion 0)."""
    b = {"resamples": 1000, "level": 0.95, "seed": 0, **(bootstrap or {})}
    parts = []
    for model, rows in rows_by_model.items():
        rows = rows[(rows["condition"] != EXCLUDED) & (rows["task"] == "localization")]
        if rows.empty:
            continue
        t = _with_baseline(_curve_points(rows, b))
        order = {s: i for i, s in enumerate(SETTING_ORDER)}
        t["_o"] = t["setting"].map(order).fillna(len(order))
        t = t.sort_values(["_o", "setting", "seed", "proportion"]).drop(columns="_o")
        t.insert(0, "model", model)
        t.insert(1, "paper_name", paper_names.get(model, ""))
        parts.append(t)
    if not parts:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[CURVE_COLUMNS]


def normalized_auc(proportion, accuracy_pct) -> float:
    """Trapezoid area under accuracy (0..1) over proportion, divided by the proportion range."""
    x, y = np.asarray(proportion, dtype=float), np.asarray(accuracy_pct, dtype=float) / 100
    order = np.argsort(x)
    x, y = x[order], y[order]
    return float(np.trapezoid(y, x) / (x[-1] - x[0])) if len(x) > 1 and x[-1] > x[0] else np.nan


def head_ablation_auc(table: pd.DataFrame) -> pd.DataFrame:
    """Normalized AUC per model, setting and seed, and for random also one row (seed -1) with the
    mean and std (ddof 0) over seeds.

    Normalized AUC = trapezoid area under accuracy (0..1) over the proportion of heads ablated,
    divided by (max - min proportion): the curve's mean accuracy over the proportions ablated
    (trapezoid-weighted), so 1 means no loss anywhere and a linear fall from 1 to 0 gives 0.5.
    The paper reports "normalized AUC" (Fig. 5 / 15) without defining the normalization."""
    recs = []
    curves = table[table["setting"] != "baseline"]
    for (model, setting), s in curves.groupby(["model", "setting"], sort=False):
        per_seed = []
        for seed, c in s.groupby("seed"):
            per_seed.append(normalized_auc(c["proportion"], c["accuracy"]))
            recs.append(
                {
                    "model": model,
                    "paper_name": c["paper_name"].iloc[0],
                    "setting": setting,
                    "seed": int(seed),
                    "n_seeds": 1,
                    "auc": per_seed[-1],
                    "auc_std": np.nan,
                    "proportion_min": c["proportion"].min(),
                    "proportion_max": c["proportion"].max(),
                    "n_points": len(c),
                }
            )
        if setting == "random":
            recs.append(
                {
                    **recs[-1],
                    "seed": -1,
                    "n_seeds": len(per_seed),
                    "auc": float(np.mean(per_seed)),
                    "auc_std": float(np.std(per_seed)),
                    "n_points": s["proportion"].nunique(),
                }
            )
    return pd.DataFrame(recs, columns=AUC_COLUMNS)
