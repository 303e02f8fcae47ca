"""Tables of the per-head causal mediation (paper sec. 3.3.2, Fig. 4 / 14) and of the cumulative
head ablation (sec. 3.3.3, Fig. 5 / 15), computed from rows.

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

Sparsity (the share of the total |statistic| carried by the top heads) is tested against a
head-permutation null: within every pair the heads' values are shuffled, so no head is
consistently large; its p-value is the share of permutations whose top-k share reaches the
observed one. Its interval resamples pairs. The overlap of the two tasks' top-k heads is tested
against two random k-subsets of the N heads (hypergeometric).

Head ablation: localization accuracy (mean localization score, %) per ablation, positions,
setting, seed and share of heads zeroed; every curve starts at the unmodified model (the
baseline condition). Its normalized AUC and the differences of AUCs get intervals from a paired
bootstrap over samples (and, for the random heads, over seeds).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..paper import MEDIATION_HEADS, MEDIATION_OVERLAP
from ..scoring import EXCLUDED
from .summary import bootstrap_ci

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
TOP_SHARES = (1, 5, 10)  # % of heads
SHARES = [*(f"share_top{p}pct" for p in TOP_SHARES), "share_top3"]
SPARSITY_COLUMNS = [
    "model",
    "paper_name",
    "task",
    "statistic",
    "n_heads",
    *[f"k_top{p}pct" for p in TOP_SHARES],
    *[f"{s}{x}" for s in SHARES for x in ("", "_lo", "_hi", "_null", "_p")],
    "share_negative",
    "n_pairs",
    "n_pairs_total",
    "n_excluded",
    "permutations",
]
OVERLAP_KS = (10, 50)
OVERLAP_COLUMNS = [
    "model",
    "paper_name",
    "statistic",
    "k_requested",
    "k",
    "n_heads",
    "shared",
    "expected_chance",
    "p_more",
    "p_less",
    "paper_shared",
    "paper_n_heads",
    "paper_expected_chance",
    "paper_p_more",
]
STATISTICS_COLUMNS = [
    "model",
    "paper_name",
    "task",
    "statistic",
    "ranks_head_ablation",
    "n_heads",
    "top_head",
    "lowest_head",
    "spearman_vs_mean",
    "k",
    "top_k_shared_with_mean",
    "top3_shared_with_mean",
    "share_negative",
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
    b = {"resamples": 1000, "level": 0.95, "seed": 0, **(bootstrap or {})}
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
    for task in _task_order(m["task"]):
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


def top_share(mf: np.ndarray, k: int) -> float:
    """Share of the total |MF| carried by the ``k`` heads of largest |MF|."""
    mf = np.asarray(mf, dtype=float)
    a = np.sort(np.abs(mf[~np.isnan(mf)]))[::-1]
    return float(a[:k].sum() / a.sum()) if len(a) and a.sum() > 0 else np.nan


def _top_shares(values: np.ndarray, ks: list[int]) -> np.ndarray:
    """``top_share`` for each k of ``ks``, over the last axis of ``values`` (any leading axes)."""
    a = np.abs(np.asarray(values, dtype=float))
    a = -np.sort(-np.where(np.isnan(a), 0.0, a), axis=-1)  # descending; NaN counts as 0
    total = a.sum(-1, keepdims=True)
    cum = np.cumsum(a, -1)
    out = np.stack([cum[..., min(k, a.shape[-1]) - 1] for k in ks], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, out / total, np.nan)


def _matrices(m: pd.DataFrame) -> dict | None:
    """One task's kept pairs as arrays over (pair, head): MF, the clipped log share, the patched
    perplexity; and each pair's base and source perplexity. None without a kept pair."""
    kept = m[m["kept"]]
    if kept.empty:
        return None
    heads = sorted({(int(a), int(b)) for a, b in zip(m["layer"], m["head"], strict=True)})
    wide = kept.set_index(["sample_id", "layer", "head"])[["mf", "mf_log", "nll"]].unstack(
        ["layer", "head"]
    )
    cols = pd.MultiIndex.from_tuples(heads, names=["layer", "head"])
    per_pair = kept.drop_duplicates("sample_id").set_index("sample_id").loc[wide.index]
    return {
        "heads": heads,
        "mf": wide["mf"].reindex(columns=cols).to_numpy(float),
        "mf_log": wide["mf_log"].reindex(columns=cols).to_numpy(float),
        "p_patched": np.exp(wide["nll"].reindex(columns=cols).to_numpy(float)),
        "p_base": np.exp(per_pair["nll_base"].to_numpy(float)),
        "p_src": np.exp(per_pair["nll_src"].to_numpy(float)),
    }


def _statistic(name: str, x: dict) -> np.ndarray:
    """One statistic per head from a task's arrays (leading axis: pairs; the arrays may carry
    a resample axis in front)."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a head without a finite value: NaN
        if name == "mean":
            return np.nanmean(x["mf"], -2)
        if name == "median":
            return np.nanmedian(x["mf"], -2)
        if name == "log":
            return np.nanmean(x["mf_log"], -2)
        if name == "avg_ppl":
            base, src = x["p_base"].mean(-1), x["p_src"].mean(-1)
            return (base[..., None] - np.nanmean(x["p_patched"], -2)) / (base - src)[..., None]
    raise ValueError(f"unknown MF statistic {name!r}; one of {STATISTICS}")


def _resampled(x: dict, idx: np.ndarray) -> dict:
    """The arrays at pair indices ``idx`` (resamples x pairs)."""
    return {
        **{k: x[k][idx] for k in ("mf", "mf_log", "p_patched", "p_base", "p_src")},
        "heads": x["heads"],
    }


def _permuted(x: dict, rng: np.random.Generator, n: int) -> dict:
    """``n`` draws of the head-permutation null: within every pair, the heads' values are
    shuffled (one permutation per pair and draw, the same for every statistic)."""
    pairs_, heads = x["mf"].shape
    order = rng.permuted(np.broadcast_to(np.arange(heads), (n, pairs_, heads)), axis=-1)
    out = {
        k: np.take_along_axis(np.broadcast_to(x[k], order.shape), order, -1)
        for k in ("mf", "mf_log", "p_patched")
    }
    out["p_base"] = np.broadcast_to(x["p_base"], (n, pairs_))
    out["p_src"] = np.broadcast_to(x["p_src"], (n, pairs_))
    return out


def _chunks(total: int, size: int = 20):
    for start in range(0, total, size):
        yield min(size, total - start)


def sparsity_tests(
    m: pd.DataFrame, statistic: str, ks: list[int], bootstrap: dict | None = None
) -> dict[str, np.ndarray]:
    """One task's top-k shares of |statistic| (``ks``): observed, the bootstrap draws over pairs
    and the head-permutation null's draws (``bootstrap``: resamples, seed, permutations)."""
    b = {"resamples": 1000, "seed": 0, "permutations": 1000, **(bootstrap or {})}
    x = _matrices(m)
    if x is None:
        nan = np.full(len(ks), np.nan)
        return {"values": np.array([]), "observed": nan, "boot": nan[None], "null": nan[None]}
    values = _statistic(statistic, x)
    observed = _top_shares(values, ks)
    rng = np.random.default_rng(b["seed"])
    n_pairs = x["mf"].shape[0]
    boot = [
        _top_shares(
            _statistic(statistic, _resampled(x, rng.integers(0, n_pairs, (n, n_pairs)))), ks
        )
        for n in _chunks(int(b["resamples"]))
    ]
    rng = np.random.default_rng(b["seed"] + 1)
    null = [
        _top_shares(_statistic(statistic, _permuted(x, rng, n)), ks)
        for n in _chunks(int(b["permutations"]))
    ]
    return {
        "values": values,
        "observed": observed,
        "boot": np.concatenate(boot),
        "null": np.concatenate(null),
    }


def null_profile(
    m: pd.DataFrame, statistic: str = "mean", bootstrap: dict | None = None
) -> np.ndarray:
    """One task's |statistic| sorted from the largest, averaged over draws of the
    head-permutation null (what the sorted |MF| would look like if no head were consistently
    large); empty without a kept pair."""
    b = {"seed": 0, "permutations": 1000, **(bootstrap or {})}
    x = _matrices(m)
    if x is None:
        return np.array([])
    rng = np.random.default_rng(b["seed"] + 1)  # the sparsity test's null draws
    total = np.zeros(x["mf"].shape[1])
    for n in _chunks(int(b["permutations"])):
        v = np.abs(_statistic(statistic, _permuted(x, rng, n)))
        total += -np.sort(-np.where(np.isnan(v), 0.0, v), axis=-1).sum(0)
    return total / int(b["permutations"])


def permutation_p(observed: float, null: np.ndarray) -> float:
    """One-sided p-value of ``observed`` against null draws, (1 + #{null >= observed}) / (1 + n)."""
    null = np.asarray(null, dtype=float)
    null = null[~np.isnan(null)]
    if np.isnan(observed) or not len(null):
        return np.nan
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def mediation_sparsity(
    heads_by_model: dict[str, pd.DataFrame],
    pairs_by_model: dict[str, pd.DataFrame],
    paper_names: dict[str, str],
    bootstrap: dict | None = None,
) -> pd.DataFrame:
    """Per model, task and statistic of MF: the share of the total |statistic| carried by the top
    1/5/10% and the top 3 heads, each with its bootstrap interval over pairs, the
    head-permutation null's mean share and the one-sided p-value of the observed share against
    it; the share of heads whose statistic is negative; and the pairs kept.
    ``pairs_by_model``: each model's ``pair_mf``."""
    b = {"resamples": 1000, "level": 0.95, "seed": 0, "permutations": 1000, **(bootstrap or {})}
    alpha = (1 - b["level"]) / 2
    recs = []
    for model, heads in heads_by_model.items():
        pm = pairs_by_model[model]
        for task in _task_order(heads["task"]):
            t = heads[heads["task"] == task]
            n = len(t)
            ks = [*(top_k(n, p) for p in TOP_SHARES), 3]
            name = paper_names.get(model, "")
            for statistic in STATISTICS:
                tests = sparsity_tests(pm[pm["task"] == task], statistic, ks, b)
                finite = tests["values"][np.isfinite(tests["values"])]
                rec = {
                    "model": model,
                    "paper_name": name,
                    "task": task,
                    "statistic": statistic,
                    "n_heads": n,
                }
                for p, k in zip(TOP_SHARES, ks, strict=False):
                    rec[f"k_top{p}pct"] = k
                for j, s in enumerate(SHARES):
                    boot, null = tests["boot"][:, j], tests["null"][:, j]
                    known = boot[~np.isnan(boot)]
                    rec[s] = float(tests["observed"][j])
                    rec[f"{s}_lo"], rec[f"{s}_hi"] = (
                        (float(np.quantile(known, alpha)), float(np.quantile(known, 1 - alpha)))
                        if len(known)
                        else (np.nan, np.nan)
                    )
                    rec[f"{s}_null"] = (
                        float(np.nanmean(null)) if np.isfinite(null).any() else np.nan
                    )
                    rec[f"{s}_p"] = permutation_p(rec[s], null)
                rec["share_negative"] = float((finite < 0).mean()) if len(finite) else np.nan
                rec.update({c: int(t[c].max()) for c in ("n_pairs", "n_pairs_total", "n_excluded")})
                rec["permutations"] = int(b["permutations"])
                recs.append(rec)
    return pd.DataFrame(recs, columns=SPARSITY_COLUMNS)


def overlap_p(n: int, k: int, shared: int) -> tuple[float, float]:
    """P(X >= shared) and P(X <= shared) for X, the heads two random k-subsets of n share
    (hypergeometric)."""
    if not 0 <= k <= n or np.isnan(shared):
        return np.nan, np.nan
    shared = int(shared)
    weights = [math.comb(k, i) * math.comb(n - k, k - i) for i in range(k + 1)]
    total = math.comb(n, k)
    return sum(weights[shared:]) / total, sum(weights[: shared + 1]) / total


def mediation_overlap(
    heads_by_model: dict[str, pd.DataFrame], paper_names: dict[str, str]
) -> pd.DataFrame:
    """Per model, statistic and k: heads in both the localization and the classification
    (binary) top-k, the overlap two random k-subsets would share on average (k * k / N), the
    hypergeometric p-values of sharing at least (``p_more``) and at most (``p_less``) that many,
    and the paper's count with its chance and p-value (its models' head counts). k is capped at
    the number of heads."""
    recs = []
    for model, heads in heads_by_model.items():
        n = int(heads.groupby("task").size().min()) if len(heads) else 0
        name = paper_names.get(model, "")
        for statistic in STATISTICS:
            col = STAT_COLUMN[statistic]
            # both tasks scored, else no overlap to count
            scored = col in heads and all(
                heads.loc[heads["task"] == t, col].notna().any() for t in TASKS
            )
            for k_req in OVERLAP_KS:
                k = min(k_req, n)
                top = [set(ranking(heads, t, statistic)[:k]) for t in TASKS] if scored else None
                shared = len(top[0] & top[1]) if scored else np.nan
                more, less = overlap_p(n, k, shared) if scored else (np.nan, np.nan)
                paper = MEDIATION_OVERLAP.get(name, {}).get(k_req, np.nan)
                paper_n = MEDIATION_HEADS.get(name, np.nan)
                paper_more = (
                    overlap_p(paper_n, k_req, paper)[0]
                    if statistic == "mean" and not np.isnan(paper)
                    else np.nan
                )
                recs.append(
                    {
                        "model": model,
                        "paper_name": name,
                        "statistic": statistic,
                        "k_requested": k_req,
                        "k": k,
                        "n_heads": n,
                        "shared": shared,
                        "expected_chance": k * k / n if n else np.nan,
                        "p_more": more,
                        "p_less": less,
                        "paper_shared": paper if statistic == "mean" else np.nan,
                        "paper_n_heads": paper_n if statistic == "mean" else np.nan,
                        "paper_expected_chance": k_req * k_req / paper_n
                        if statistic == "mean" and not np.isnan(paper_n)
                        else np.nan,
                        "paper_p_more": paper_more,
                    }
                )
    return pd.DataFrame(recs, columns=OVERLAP_COLUMNS)


def _spearman(a: pd.Series, b: pd.Series) -> float:
    ok = a.notna() & b.notna()
    if ok.sum() < 2:
        return np.nan
    ra, rb = a[ok].rank(), b[ok].rank()
    return float(ra.corr(rb)) if ra.std() > 0 and rb.std() > 0 else np.nan


def mediation_statistics(
    heads_by_model: dict[str, pd.DataFrame],
    paper_names: dict[str, str],
    rank_by: str = "mean",
    k: int = 10,
) -> pd.DataFrame:
    """Per model, task and statistic of MF: how its ranking differs from the mean's (the
    paper's): Spearman's rank correlation over heads, the heads its top-k (capped at the heads
    there are) and its top 3 share with the mean's, its top head and its lowest-|value| head (the
    low-importance control's first), and the share of heads with a negative value.
    ``ranks_head_ablation`` marks the statistic head ablation ranks by."""
    recs = []
    for model, heads in heads_by_model.items():
        for task in _task_order(heads["task"]):
            t = heads[heads["task"] == task]
            kk = min(k, len(t))
            if t["mf_mean"].isna().all():
                continue
            mean_top = ranking(heads, task, "mean")
            for statistic in STATISTICS:
                col = STAT_COLUMN[statistic]
                order = ranking(heads, task, statistic)
                values = t[col].dropna()
                recs.append(
                    {
                        "model": model,
                        "paper_name": paper_names.get(model, ""),
                        "task": task,
                        "statistic": statistic,
                        "ranks_head_ablation": statistic == rank_by,
                        "n_heads": len(t),
                        "top_head": "l{}.h{}".format(*order[0]),
                        "lowest_head": "l{}.h{}".format(*lowest(heads, task, statistic)[0]),
                        "spearman_vs_mean": _spearman(t["mf_mean"], t[col]),
                        "k": kk,
                        "top_k_shared_with_mean": len(set(order[:kk]) & set(mean_top[:kk])),
                        "top3_shared_with_mean": len(set(order[:3]) & set(mean_top[:3])),
                        "share_negative": float((values < 0).mean()) if len(values) else np.nan,
                    }
                )
    return pd.DataFrame(recs, columns=STATISTICS_COLUMNS)


# ---- head ablation ------------------------------------------------------------------------------

SETTING_ORDER = ("baseline", "localization", "classification", "lowest", "random")
VARIANT = ("ablation", "positions")
DEFAULT_VARIANT = {"ablation": "zero", "positions": "post_image"}
VARIANT_ORDER = {"ablation": ("zero", "mean"), "positions": ("post_image", "all")}
CRITICAL = ("localization", "classification")
CONTROLS = ("lowest", "random")
CURVE_COLUMNS = [
    "model",
    "paper_name",
    *VARIANT,
    "setting",
    "seed",
    "proportion",
    "n_heads",
    "accuracy",
    "acc_lo",
    "acc_hi",
    "n",
    "format_broken",
    "acc_well_formed",
    "n_well_formed",
]
AUC_COLUMNS = [
    "model",
    "paper_name",
    *VARIANT,
    "setting",
    "seed",
    "n_seeds",
    "auc",
    "auc_lo",
    "auc_hi",
    "auc_std",
    "baseline",
    "proportion_min",
    "proportion_max",
    "n_points",
]
CONTRAST_COLUMNS = [
    "model",
    "paper_name",
    *VARIANT,
    "setting",
    "versus",
    "delta_auc",
    "delta_lo",
    "delta_hi",
    "p",
    "n",
    "n_seeds",
    "resamples",
]


def _localization_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The scored localization rows of the samples head ablation used, with the variant columns
    (rows written before they existed: the paper's zero ablation after the image)."""
    if rows.empty:  # an empty probing subset: no rows, and maybe no columns either
        return rows
    rows = rows[(rows["condition"] != EXCLUDED) & (rows["task"] == "localization")]
    return rows.assign(**{c: v for c, v in DEFAULT_VARIANT.items() if c not in rows})


def _well_formed(g: pd.DataFrame) -> pd.Series:
    """Per row: 1 if the answer is written in the family's own format, 0 if not, NaN unknown
    (rows scored before ``well_formed`` existed)."""
    if "well_formed" not in g:
        return pd.Series(np.nan, index=g.index)
    return pd.to_numeric(g["well_formed"], errors="coerce").astype(float)


def _curve_points(rows: pd.DataFrame, b: dict) -> pd.DataFrame:
    """Accuracy per (ablation, positions, setting, seed, proportion) with its interval over
    samples; the share of answers out of the family's format and the accuracy of the rest."""
    recs = []
    keys = [*VARIANT, "setting", "seed", "proportion"]
    for key, g in rows.groupby(keys, sort=False):
        score = 100 * g.groupby("sample_id")["loc_score"].mean().astype(float)
        lo, hi = bootstrap_ci(score.to_numpy(), b["resamples"], b["level"], b["seed"])
        wf = _well_formed(g)
        well = g[wf == 1]
        recs.append(
            {
                **dict(zip(keys, key, strict=True)),
                "seed": int(key[3]),
                "proportion": float(key[4]),
                "n_heads": int(g["n_heads"].max()),
                "accuracy": float(score.mean()),
                "acc_lo": lo,
                "acc_hi": hi,
                "n": len(score),
                "format_broken": float(100 * (1 - wf.mean())) if wf.notna().any() else np.nan,
                "acc_well_formed": float(100 * well["loc_score"].astype(float).mean())
                if len(well)
                else np.nan,
                "n_well_formed": int(len(well)) if wf.notna().any() else np.nan,
            }
        )
    return pd.DataFrame(recs, columns=CURVE_COLUMNS[2:])


def _with_baseline(points: pd.DataFrame) -> pd.DataFrame:
    """Each curve (ablation, positions, setting, seed) with the unmodified model as its point at
    proportion 0 (one baseline serves every variant: nothing is ablated there)."""
    base = points[points["setting"] == "baseline"]
    curves = points[points["setting"] != "baseline"]
    if base.empty or curves.empty:
        return points
    parts = [curves]
    curve_keys = [*VARIANT, "setting", "seed"]
    starts = set(
        curves.loc[curves["proportion"] == 0, curve_keys].itertuples(index=False, name=None)
    )
    for key in curves[curve_keys].drop_duplicates().itertuples(index=False, name=None):
        if key not in starts:
            parts.append(base.iloc[:1].assign(**dict(zip(curve_keys, key, strict=True))))
    return pd.concat(parts, ignore_index=True)


def _order(t: pd.DataFrame) -> pd.DataFrame:
    ranks = {c: {v: i for i, v in enumerate(VARIANT_ORDER[c])} for c in VARIANT}
    settings = {s: i for i, s in enumerate(SETTING_ORDER)}
    keys = {
        **{f"_{c}": t[c].map(ranks[c]).fillna(len(ranks[c])) for c in VARIANT},
        "_s": t["setting"].map(settings).fillna(len(settings)),
    }
    t = t.assign(**keys)
    by = ["_ablation", "ablation", "_positions", "positions", "_s", "setting"]
    by += [c for c in ("versus", "seed", "proportion") if c in t]
    return t.sort_values(by, kind="stable").drop(columns=list(keys))


def head_ablation_table(
    rows_by_model: dict[str, pd.DataFrame], bootstrap: dict | None, paper_names: dict[str, str]
) -> pd.DataFrame:
    """One row per model, ablation, positions, setting, seed (-1 unless random) and proportion of
    heads ablated: localization accuracy (%) with its bootstrap interval over samples, the share
    of answers not written in the family's format (``format_broken``, %) and the accuracy of
    the well-formed ones. The baseline is each curve's first point (proportion 0)."""
    b = {"resamples": 1000, "level": 0.95, "seed": 0, **(bootstrap or {})}
    parts = []
    for model, rows in rows_by_model.items():
        rows = _localization_rows(rows)
        if rows.empty:
            continue
        t = _order(_with_baseline(_curve_points(rows, b)))
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


def per_sample_auc(rows: pd.DataFrame) -> pd.DataFrame:
    """Each sample's normalized AUC per curve (ablation, positions, setting, seed): its score
    (0..1) over the proportions, the unmodified model's at 0. Their mean over samples is the
    curve's AUC (the area is linear in the scores), so resampling samples gives its interval."""
    keys = [*VARIANT, "setting", "seed"]
    rows = _localization_rows(rows)
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "sample_id", "auc"])
    base = rows[rows["setting"] == "baseline"].groupby("sample_id")["loc_score"].mean()
    parts = []
    for key, g in rows[rows["setting"] != "baseline"].groupby(keys, sort=False):
        wide = g.groupby(["sample_id", "proportion"])["loc_score"].mean().unstack("proportion")
        if 0.0 not in wide.columns:
            wide[0.0] = base.reindex(wide.index)
        wide = wide[sorted(wide.columns)]
        x = wide.columns.to_numpy(float)
        y = wide.to_numpy(float)
        auc = (
            np.trapezoid(y, x, axis=1) / (x[-1] - x[0])
            if len(x) > 1 and x[-1] > x[0]
            else np.full(len(wide), np.nan)
        )
        part = pd.DataFrame({"sample_id": wide.index, "auc": auc})
        for c, v in zip(keys, key, strict=True):
            part[c] = v
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[*keys, "sample_id", "auc"])
    return pd.concat(parts, ignore_index=True)[[*keys, "sample_id", "auc"]]


def _auc_matrix(per: pd.DataFrame, variant: tuple, setting: str) -> pd.DataFrame:
    """Samples x seeds of one curve's per-sample AUC (one column unless random)."""
    a, pos = variant
    c = per[(per["ablation"] == a) & (per["positions"] == pos) & (per["setting"] == setting)]
    return c.pivot_table(index="sample_id", columns="seed", values="auc", dropna=False)


def paired_mean_draws(mats: list[np.ndarray], resamples: int, seed: int) -> list[np.ndarray]:
    """Bootstrap draws of each matrix's mean (samples x seeds): every draw resamples the samples
    (the same rows for every matrix: paired) and, per matrix, its seeds (columns)."""
    n = mats[0].shape[0]
    rng = np.random.default_rng(seed)
    out: list[list[np.ndarray]] = [[] for _ in mats]
    for size in _chunks(int(resamples), 200):
        r = rng.integers(0, n, (size, n))
        for j, a in enumerate(mats):
            cols = a[r].mean(1)  # (size, seeds): each seed's mean over the resampled samples
            k = a.shape[1]
            s = rng.integers(0, k, (size, k)) if k > 1 else np.zeros((size, 1), dtype=int)
            out[j].append(np.take_along_axis(cols, s, 1).mean(1))
    return [np.concatenate(o) for o in out]


def head_ablation_auc(
    table: pd.DataFrame,
    rows_by_model: dict[str, pd.DataFrame] | None = None,
    bootstrap: dict | None = None,
) -> pd.DataFrame:
    """Normalized AUC per model, ablation, positions, setting and seed, and for random also one
    row (seed -1) with the mean and std (ddof 0) over seeds. With the rows, each AUC gets a 95%
    bootstrap interval over samples (the random mean's also over seeds).

    Normalized AUC = trapezoid area under accuracy (0..1) over the proportion of heads ablated,
    divided by (max - min proportion): the curve's mean accuracy over the proportions ablated
    (trapezoid-weighted). It is not relative to the unmodified model: a curve that never drops
    scores the baseline accuracy (``baseline``), a linear fall from 1 to 0 gives 0.5. The paper
    reports "normalized AUC" (Fig. 5 / 15) without defining the normalization."""
    b = {"resamples": 1000, "level": 0.95, "seed": 0, **(bootstrap or {})}
    alpha = (1 - b["level"]) / 2
    table = table.assign(**{c: v for c, v in DEFAULT_VARIANT.items() if c not in table})
    recs = []
    curves = table[table["setting"] != "baseline"]
    keys = ["model", *VARIANT, "setting"]
    for (model, a, pos, setting), s in curves.groupby(keys, sort=False):
        per = (
            per_sample_auc(rows_by_model[model])
            if rows_by_model is not None and model in rows_by_model
            else None
        )
        matrix = _auc_matrix(per, (a, pos), setting) if per is not None else None
        base = s.loc[s["proportion"] == 0, "accuracy"]
        per_seed = []
        for seed, c in s.groupby("seed"):
            per_seed.append(normalized_auc(c["proportion"], c["accuracy"]))
            lo = hi = np.nan
            if matrix is not None and seed in matrix:
                col = matrix[[seed]].dropna().to_numpy()
                if len(col):
                    [draws] = paired_mean_draws([col], b["resamples"], b["seed"])
                    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
            recs.append(
                {
                    "model": model,
                    "paper_name": c["paper_name"].iloc[0],
                    "ablation": a,
                    "positions": pos,
                    "setting": setting,
                    "seed": int(seed),
                    "n_seeds": 1,
                    "auc": per_seed[-1],
                    "auc_lo": lo,
                    "auc_hi": hi,
                    "auc_std": np.nan,
                    "baseline": float(base.iloc[0]) / 100 if len(base) else np.nan,
                    "proportion_min": c["proportion"].min(),
                    "proportion_max": c["proportion"].max(),
                    "n_points": len(c),
                }
            )
        if setting == "random":
            lo = hi = np.nan
            if matrix is not None and len(matrix.dropna()):
                [draws] = paired_mean_draws([matrix.dropna().to_numpy()], b["resamples"], b["seed"])
                lo, hi = np.quantile(draws, [alpha, 1 - alpha])
            recs.append(
                {
                    **recs[-1],
                    "seed": -1,
                    "n_seeds": len(per_seed),
                    "auc": float(np.mean(per_seed)),
                    "auc_lo": lo,
                    "auc_hi": hi,
                    "auc_std": float(np.std(per_seed)),
                    "n_points": s["proportion"].nunique(),
                }
            )
    return pd.DataFrame(recs, columns=AUC_COLUMNS)


def head_ablation_contrasts(
    rows_by_model: dict[str, pd.DataFrame], bootstrap: dict | None, paper_names: dict[str, str]
) -> pd.DataFrame:
    """Per model and (ablation, positions): AUC(critical) - AUC(control) for the critical
    rankings (localization, classification) against the low-importance and the random heads
    (mean over seeds), with a 95% paired bootstrap interval over samples (resampled together for
    both curves; the random heads' seeds resampled too) and the bootstrap's two-sided p-value of
    a zero difference. Negative: the critical heads cost more localization over the whole curve."""
    b = {"resamples": 1000, "level": 0.95, "seed": 0, **(bootstrap or {})}
    alpha = (1 - b["level"]) / 2
    recs = []
    for model, rows in rows_by_model.items():
        per = per_sample_auc(rows)
        if per.empty:
            continue
        variants = per[list(VARIANT)].drop_duplicates().itertuples(index=False, name=None)
        for variant in variants:
            have = set(
                per.loc[
                    (per["ablation"] == variant[0]) & (per["positions"] == variant[1]), "setting"
                ]
            )
            for setting in (s for s in CRITICAL if s in have):
                for versus in (v for v in CONTROLS if v in have):
                    crit = _auc_matrix(per, variant, setting)
                    ctrl = _auc_matrix(per, variant, versus)
                    both = crit.dropna().index.intersection(ctrl.dropna().index)
                    if not len(both):
                        continue
                    a, c = crit.loc[both].to_numpy(), ctrl.loc[both].to_numpy()
                    da, dc = paired_mean_draws([a, c], b["resamples"], b["seed"])
                    d = da - dc
                    n = len(d)
                    p = min(1.0, 2 * min(1 + np.sum(d <= 0), 1 + np.sum(d >= 0)) / (n + 1))
                    recs.append(
                        {
                            "model": model,
                            "paper_name": paper_names.get(model, ""),
                            "ablation": variant[0],
                            "positions": variant[1],
                            "setting": setting,
                            "versus": versus,
                            "delta_auc": float(a.mean() - c.mean()),
                            "delta_lo": float(np.quantile(d, alpha)),
                            "delta_hi": float(np.quantile(d, 1 - alpha)),
                            "p": float(p),
                            "n": len(both),
                            "n_seeds": c.shape[1],
                            "resamples": int(b["resamples"]),
                        }
                    )
    out = pd.DataFrame(recs, columns=CONTRAST_COLUMNS)
    if not len(out):
        return out
    return pd.concat([_order(g) for _, g in out.groupby("model", sort=False)], ignore_index=True)
