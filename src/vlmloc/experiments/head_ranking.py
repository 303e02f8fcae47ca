"""Each head's mediation score from the mediation rows (paper sec. 3.3.2), and the rankings that
head ablation (sec. 3.3.3) zeroes heads in.

Mediation: per (sample, task) pair the base run (object removed), the source run (original
image) and one patched run per head give mean negative log-probabilities of the answer's content
tokens (``nll``, a log-perplexity). With P = exp(nll) the Mediation Fraction of a head in one
pair is MF = (P_base - P_patched) / (P_base - P_src) (paper eq. 1). A pair whose base and source
barely differ (|nll_base - nll_src| < ``min_log_gap``) would divide by almost zero, so it is
dropped and counted. Per head, four statistics over the kept pairs (``STATISTICS``):

- ``mean``: the mean of the pairs' MF (the paper's), with a 95% bootstrap interval over pairs;
- ``median``: the median of the pairs' MF (one pair with a tiny gap cannot move it);
- ``avg_ppl``: MF of the pair-averaged perplexities,
  (mean P_base - mean P_patched) / (mean P_base - mean P_src);
- ``log``: the bounded variant, the mean over pairs of the share of the LOG-perplexity gap
  closed, (nll_base - nll_patched) / (nll_base - nll_src), each pair's clipped to [-1, 1].
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..defaults import with_defaults
from ..scoring import EXCLUDED
from ..statistics import bootstrap_ci

TASKS = ("localization", "binary")  # binary: the paper's classification task for mediation
STATISTICS = ("mean", "median", "avg_ppl", "log")
STAT_COLUMN = {"mean": "mf_mean", "median": "mf_median", "avg_ppl": "mf_avg_ppl", "log": "mf_log"}
LOG_CLIP = 1.0  # the bounded variant: each pair's share of the log gap closed, in [-1, 1]
PAIR_COLUMNS = ["task", "sample_id", "nll_base", "nll_src", "log_gap", "kept"]
PAIR_MF_COLUMNS = [
    "task",
    "sample_id",
    "layer",
    "head",
    "nll_base",
    "nll_src",
    "nll",
    "kept",
    "mf",
    "mf_log",
]
HEAD_COLUMNS = [
    "task",
    "layer",
    "head",
    "mf_mean",
    "mf_lo",
    "mf_hi",
    "mf_median",
    "mf_avg_ppl",
    "mf_log",
    "n_pairs",
    "n_pairs_total",
    "n_excluded",
    "rank",
]


def task_order(tasks) -> list[str]:
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


def pair_mf(rows: pd.DataFrame, min_log_gap: float) -> pd.DataFrame:
    """One row per (task, pair, head): the pair's base and source nll, the patched nll, whether
    the pair is kept, its MF (paper eq. 1) and its share of the log gap closed clipped to
    [-1, 1] (``mf_log``). Every pair of every head, kept or not (``kept`` says)."""
    if not len(rows) or not (rows["condition"] != EXCLUDED).any():
        return pd.DataFrame(columns=PAIR_MF_COLUMNS)
    p = pairs(rows, min_log_gap)
    patched = rows[~rows["condition"].isin(["base", "source", EXCLUDED])]
    m = patched[["task", "sample_id", "layer", "head", "nll"]].merge(p, on=["task", "sample_id"])
    m[["layer", "head"]] = m[["layer", "head"]].astype(int)
    p_base, p_src, p_patched = (np.exp(m[c]) for c in ("nll_base", "nll_src", "nll"))
    m["mf"] = (p_base - p_patched) / (p_base - p_src)  # paper eq. 1
    log_share = (m["nll_base"] - m["nll"]) / (m["nll_base"] - m["nll_src"])
    m["mf_log"] = log_share.clip(-LOG_CLIP, LOG_CLIP)
    return m[PAIR_MF_COLUMNS].reset_index(drop=True)


def _task_scores(m: pd.DataFrame, b: dict) -> pd.DataFrame:
    """One task's heads: every statistic over the kept pairs, and the mean's interval."""
    kept = m[m["kept"]].assign(
        p_base=lambda d: np.exp(d["nll_base"]),
        p_src=lambda d: np.exp(d["nll_src"]),
        p_patched=lambda d: np.exp(d["nll"]),
    )
    g = kept.groupby(["layer", "head"])
    t = g[["p_base", "p_src", "p_patched"]].mean()
    t["mf_mean"], t["mf_median"], t["mf_log"] = g["mf"].mean(), g["mf"].median(), g["mf_log"].mean()
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
    """One row per (task, layer, head) of one model's mediation rows: every statistic of MF over
    the kept pairs (mean with its percentile-bootstrap interval, median, ``mf_avg_ppl``, the
    bounded ``mf_log``), kept and total pairs, samples excluded from the experiment, and the rank
    within the task by the mean (the paper's; 1 = highest; ties by layer, head). A task without a
    kept pair has NaN scores and ``n_pairs`` 0."""
    b = with_defaults("bootstrap", bootstrap)
    n_excluded = (
        int(rows.loc[rows["condition"] == EXCLUDED, "sample_id"].nunique()) if len(rows) else 0
    )
    if (
        not len(rows) or not (rows["condition"] != EXCLUDED).any()
    ):  # no pair at all (an empty probing subset)
        return pd.DataFrame(columns=HEAD_COLUMNS).assign(n_excluded=n_excluded)[HEAD_COLUMNS]
    p = pairs(rows, min_log_gap)
    m = pair_mf(rows, min_log_gap)
    parts = []
    for task in task_order(m["task"]):
        t = _by_stat(_task_scores(m[m["task"] == task], b), "mean")
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


def _column(heads: pd.DataFrame, statistic: str) -> str:
    if statistic not in STAT_COLUMN:
        raise ValueError(f"unknown MF statistic {statistic!r}; one of {STATISTICS}")
    col = STAT_COLUMN[statistic]
    if col not in heads:
        raise ValueError(f"the head scores have no {col!r} (rank the heads again: rank_heads)")
    return col


def _by_stat(t: pd.DataFrame, statistic: str = "mean") -> pd.DataFrame:
    """Highest value of ``statistic`` first; ties by layer, head; NaN last."""
    order = [_column(t, statistic), "layer", "head"]
    return t.sort_values(order, ascending=[False, True, True], na_position="last")


def _task(heads: pd.DataFrame, task: str) -> pd.DataFrame:
    t = heads[heads["task"] == task]
    if t.empty:
        have = sorted(heads["task"].unique())
        raise ValueError(f"no head scores for task {task!r} (have {have})")
    return t


def ranking(heads: pd.DataFrame, task: str, statistic: str = "mean") -> list[tuple[int, int]]:
    """(layer, head) of one task, highest ``statistic`` of MF first (ties by layer, head; NaN
    last)."""
    t = _by_stat(_task(heads, task), statistic)
    return [(int(a), int(b)) for a, b in zip(t["layer"], t["head"], strict=True)]


def lowest(heads: pd.DataFrame, task: str, statistic: str = "mean") -> list[tuple[int, int]]:
    """(layer, head) of one task, ``statistic`` of MF closest to zero first: the low-importance
    control."""
    col = _column(heads, statistic)
    t = _task(heads, task).assign(_abs=lambda d: d[col].abs())
    t = t.sort_values(["_abs", "layer", "head"], na_position="last")
    return [(int(a), int(b)) for a, b in zip(t["layer"], t["head"], strict=True)]


def top_k(n_heads: int, percent: float) -> int:
    """Heads in the top ``percent`` %: at least one."""
    return max(1, math.ceil(n_heads * percent / 100))
