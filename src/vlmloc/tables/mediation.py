"""Tables of the per-head causal mediation (paper sec. 3.3.2, Fig. 4 / 14): each task's heads
(``experiments.head_ranking``), their sparsity, the two tasks' overlap and the statistics' agreement.

Sparsity (the share of the total |statistic| carried by the top heads) is tested against a
head-permutation null: within every pair the heads' values are shuffled, so no head is
consistently large; its p-value is the share of permutations whose top-k share reaches the
observed one. Its interval resamples pairs. The overlap of the two tasks' top-k heads is tested
against two random k-subsets of the N heads (hypergeometric).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..defaults import with_defaults
from ..experiments.head_ranking import (
    STAT_COLUMN,
    STATISTICS,
    TASKS,
    lowest,
    ranking,
    task_order,
    top_k,
)
from ..paper import MEDIATION_HEADS, MEDIATION_OVERLAP
from ..statistics import chunks, permutation_p

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


def sparsity_tests(
    m: pd.DataFrame, statistic: str, ks: list[int], bootstrap: dict | None = None
) -> dict[str, np.ndarray]:
    """One task's top-k shares of |statistic| (``ks``): observed, the bootstrap draws over pairs
    and the head-permutation null's draws (``bootstrap``: resamples, seed, permutations)."""
    b = with_defaults("bootstrap", bootstrap)
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
        for n in chunks(int(b["resamples"]))
    ]
    rng = np.random.default_rng(b["seed"] + 1)
    null = [
        _top_shares(_statistic(statistic, _permuted(x, rng, n)), ks)
        for n in chunks(int(b["permutations"]))
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
    b = with_defaults("bootstrap", bootstrap)
    x = _matrices(m)
    if x is None:
        return np.array([])
    rng = np.random.default_rng(b["seed"] + 1)  # the sparsity test's null draws
    total = np.zeros(x["mf"].shape[1])
    for n in chunks(int(b["permutations"])):
        v = np.abs(_statistic(statistic, _permuted(x, rng, n)))
        total += -np.sort(-np.where(np.isnan(v), 0.0, v), axis=-1).sum(0)
    return total / int(b["permutations"])


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
    b = with_defaults("bootstrap", bootstrap)
    alpha = (1 - b["level"]) / 2
    recs = []
    for model, heads in heads_by_model.items():
        pm = pairs_by_model[model]
        for task in task_order(heads["task"]):
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
        for task in task_order(heads["task"]):
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
