"""Tables of the attention knockout (paper Fig. 3, Fig. 12), computed from scored rows: per
window and mask, each task's accuracy with its bootstrap interval; every drop paired on the
samples each condition scored, with a paired bootstrap interval over those samples; and the
summary of the worst window per size beside the paper's statement.

A control's draw (random tokens, or the translated mask) is made per (seed, sample), so the seeds
are independent draws within each sample: a sample's score averaged over its seeds, resampled
over samples, covers the variation of both the samples and the draws."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..defaults import with_defaults
from .accuracy import METRIC, SHORT, STATS, bootstrap_ci, summarize_groups

KNOCKOUT_PARAMS = ["strategy", "padding", "window", "layer_first", "layer_last"]
KNOCKOUT_COLUMNS = [
    "model",
    "condition",
    *KNOCKOUT_PARAMS,
    "seeds",
    "n_layers",
    "n_edited",
    "n",
    "n_skipped",
    *[c for c in STATS if "ig_gap" not in c],
    *[f"{t}_drop_{x}" for t in SHORT.values() for x in ("lo", "hi")],
]


def _unseeded(condition: str) -> str:
    """A control's condition name without its seed (``random_s1_l0-3`` -> ``random_l0-3``)."""
    return re.sub(r"_s\d+(?=_l\d)", "", condition)


def _paired_drops(
    t: pd.DataFrame, rows: pd.DataFrame, bootstrap: dict | None = None
) -> pd.DataFrame:
    """``{task}_drop``: a condition's accuracy minus the baseline's ON THE SAME SAMPLES, and its
    95% bootstrap interval (``_drop_lo``, ``_drop_hi``) over those samples' paired differences
    (each sample's score averaged over the condition's seeds first). A control that skips samples
    (large objects leave no room) would otherwise be compared with a baseline over samples it
    never saw, and show a drop that is only the skipped samples' difference."""
    b = with_defaults("bootstrap", bootstrap)
    score = 100 * rows.apply(lambda r: r[METRIC[r["task"]]], axis=1).astype(float)
    per = rows.assign(score=score).groupby(["condition", "task", "sample_id"])["score"].mean()
    base = (
        per.xs("baseline", level="condition")
        if "baseline" in per.index.get_level_values(0)
        else None
    )
    t = t.copy()
    for task, short in SHORT.items():
        drops, lows, highs = {}, {}, {}
        for cond in t["condition"]:
            if base is None or (cond, task) not in per.index.droplevel("sample_id"):
                drops[cond] = lows[cond] = highs[cond] = np.nan
                continue
            mine = per.loc[(cond, task)]
            diff = (mine - base.loc[task].reindex(mine.index)).to_numpy(float)
            drops[cond] = float(mine.mean() - base.loc[task].reindex(mine.index).mean())
            lows[cond], highs[cond] = bootstrap_ci(diff, b["resamples"], b["level"], b["seed"])
        t[f"{short}_drop"] = t["condition"].map(drops)
        t[f"{short}_drop_lo"] = t["condition"].map(lows)
        t[f"{short}_drop_hi"] = t["condition"].map(highs)
    return t


def knockout_table(
    rows_per_model: dict[str, pd.DataFrame], bootstrap: dict | None = None
) -> pd.DataFrame:
    """One row per knockout condition and model: the window, the blocked keys, both tasks'
    accuracy with its 95% bootstrap interval over samples, and the drop from the unmodified
    model on the same samples (``_paired_drops``). A control with several seeds is one row: each sample's score averaged over the seeds
    (the interval resamples those), ``{task}_std`` the std over seeds of the per-seed accuracy,
    ``seeds`` how many. Rows of a sample the control could not place (``skip_reason``) are left
    out and counted in ``n_skipped`` (samples)."""
    parts = []
    for model, rows in rows_per_model.items():
        if rows.empty:
            continue
        rows = rows.assign(condition=rows["condition"].map(_unseeded))
        why = (
            rows["skip_reason"].fillna("")
            if "skip_reason" in rows
            else pd.Series("", index=rows.index)
        )
        skipped = rows[why != ""].groupby("condition")["sample_id"].nunique()
        params = rows.drop_duplicates("condition").set_index("condition")[KNOCKOUT_PARAMS]
        n_layers = int(rows["layer_last"].max()) + 1
        rows = rows[why == ""]
        t = summarize_groups(rows, ["condition"], bootstrap)
        lost = [
            c for c in params.index if c not in set(t.get("condition", []))
        ]  # every sample skipped: no accuracy
        t = (
            pd.concat([t, pd.DataFrame({"condition": lost, "n": 0})], ignore_index=True)
            if lost
            else t
        )
        t = _paired_drops(t.join(params, on="condition"), rows, bootstrap)
        seeds = (
            rows.groupby("condition")["seed"].nunique() if "seed" in rows else pd.Series(dtype=int)
        )
        t["seeds"] = (
            t["condition"].map(seeds[seeds > 0]).astype("Int64")
        )  # empty: a condition without seeds
        t["n_skipped"] = t["condition"].map(skipped).fillna(0).astype(int)
        t["n_layers"] = n_layers
        t.insert(0, "model", model)
        parts.append(t)
    return (
        pd.concat(parts, ignore_index=True).reindex(columns=KNOCKOUT_COLUMNS)
        if parts
        else pd.DataFrame(columns=KNOCKOUT_COLUMNS)
    )


KNOCKOUT_SUMMARY_COLUMNS = [
    "model",
    "task",
    "window",
    "layers",
    "drop",
    "drop_lo",
    "drop_hi",
    "n",
    "random_drop",
    "random_drop_lo",
    "random_drop_hi",
    "random_drop_std",
    "random_n",
    "translated_drop",
    "translated_drop_lo",
    "translated_drop_hi",
    "translated_drop_std",
    "translated_n",
    "depth",
    "n_layers",
    "paper",
]


def _control_drop(
    t: pd.DataFrame, strategy: str, first: int, last: int, short: str
) -> dict[str, float]:
    """A control's drop in the window first..last (mean over seeds) with its paired interval
    over the samples it placed, its std over seeds, and those samples' count."""
    c = t[(t["strategy"] == strategy) & (t["layer_first"] == first) & (t["layer_last"] == last)]
    cols = {"drop": "_drop", "drop_lo": "_drop_lo", "drop_hi": "_drop_hi", "drop_std": "_std"}
    out = {
        f"{strategy}_{k}": c[f"{short}{v}"].iloc[0] if len(c) and f"{short}{v}" in c else np.nan
        for k, v in cols.items()
    }
    out[f"{strategy}_n"] = c["n"].iloc[0] if len(c) else np.nan
    return out


def knockout_summary(table: pd.DataFrame, paper_names: dict[str, str]) -> pd.DataFrame:
    """Per model and task: the window of each size whose object knockout lowers accuracy most,
    with its paired interval; both controls' drops in that window (mean over seeds) with their
    paired intervals over the samples each placed, the std over seeds and those samples' count;
    and where in depth it lies; beside the paper's statement."""
    from ..paper import KNOCKOUT_STATEMENT

    rows = []
    for model, t in table.groupby("model", sort=False):
        obj = t[(t["strategy"] == "object") & (t["padding"] == 0)]
        n_layers = int(t["n_layers"].iloc[0])
        paper = KNOCKOUT_STATEMENT.get(paper_names.get(model, ""), "")

        for task, short in SHORT.items():
            chosen = [
                (int(size), w.loc[w[f"{short}_drop"].idxmin()])
                for size, w in obj[obj["window"] < n_layers].groupby("window")
                if w[f"{short}_drop"].notna().any()
            ]
            every = obj[obj["window"] == n_layers]
            if len(every):
                chosen.append((n_layers, every.iloc[0]))
            for size, worst in chosen:
                first, last = worst["layer_first"], worst["layer_last"]
                rows.append(
                    {
                        "model": model,
                        "task": task,
                        "window": size,
                        "layers": f"{int(first)}-{int(last)}",
                        "drop": worst[f"{short}_drop"],
                        "drop_lo": worst.get(f"{short}_drop_lo", np.nan),
                        "drop_hi": worst.get(f"{short}_drop_hi", np.nan),
                        "n": worst["n"],
                        **_control_drop(t, "random", first, last, short),
                        **_control_drop(t, "translated", first, last, short),
                        "depth": (first + last) / 2 / max(n_layers - 1, 1)
                        if size < n_layers
                        else np.nan,
                        "n_layers": n_layers,
                        "paper": paper,
                    }
                )
    return pd.DataFrame(rows, columns=KNOCKOUT_SUMMARY_COLUMNS)
