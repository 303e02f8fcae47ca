"""The cells the token-ablation, containerization, view-ablation and knockout tables share: per
group of rows, the token shares edited, accuracy % per task with its bootstrap interval over
samples and its std over seeds, and the drop from the baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..defaults import with_defaults
from ..statistics import bootstrap_ci

METRIC = {"localization": "loc_score", "list": "identified"}
SHORT = {"localization": "loc", "list": "cls"}
STATS = [f"{t}{x}" for t in SHORT.values() for x in ("", "_lo", "_hi", "_std")] + [
    "loc_drop",
    "cls_drop",
]


def _shares(rows: pd.DataFrame) -> dict[str, float]:
    per_sample = rows.drop_duplicates("sample_id")
    local = per_sample[per_sample["n_tokens_local"] > 0]
    return {
        "token_pct": float((100 * per_sample["n_edited"] / per_sample["n_tokens"]).mean()),
        "token_pct_global": float(
            (100 * per_sample["n_edited_global"] / per_sample["n_tokens_global"]).mean()
        ),
        "token_pct_local": float((100 * local["n_edited_local"] / local["n_tokens_local"]).mean())
        if len(local)
        else np.nan,
        "n_edited": float(per_sample["n_edited"].mean()),
    }


def _ig_gap(rows: pd.DataFrame, short: str) -> dict[str, float]:
    """IG's completeness gap over samples; a sample whose f(x) equals f(baseline) has no relative
    gap (NaN) and is left out, and counted."""
    gaps = rows.drop_duplicates("sample_id")["ig_gap"]
    known = gaps.dropna()
    return {
        f"{short}_ig_gap_median": float(known.median()) if len(known) else np.nan,
        f"{short}_ig_gap_p90": float(known.quantile(0.9)) if len(known) else np.nan,
        f"{short}_ig_gap_n_excluded": int(gaps.isna().sum()),
    }


def summarize_groups(
    rows: pd.DataFrame, keys: list[str], bootstrap: dict | None = None
) -> pd.DataFrame:
    """Per group of ``keys``: token shares, samples, and per task accuracy %, its bootstrap
    interval, and the std over seeds (where a group has several)."""
    b = with_defaults("bootstrap", bootstrap)
    rows = rows.copy()
    rows["score"] = 100 * rows.apply(lambda r: r[METRIC[r["task"]]], axis=1).astype(float)
    out = []
    for key, g in rows.groupby(keys, dropna=False, sort=False):
        rec = {
            **dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
            **_shares(g),
            "n": g["sample_id"].nunique(),
        }
        for task, short in SHORT.items():
            t = g[g["task"] == task]
            per_seed = t.groupby("seed" if "seed" in t and t["seed"].notna().any() else "task")[
                "score"
            ].mean()
            per_sample = t.groupby("sample_id")["score"].mean()
            rec[short] = float(per_sample.mean()) if len(t) else np.nan
            rec[f"{short}_lo"], rec[f"{short}_hi"] = bootstrap_ci(
                per_sample.to_numpy(), b["resamples"], b["level"], b["seed"]
            )
            rec[f"{short}_std"] = float(per_seed.std(ddof=0)) if len(per_seed) > 1 else np.nan
            if "ig_gap" in t and (t["strategy"] == "ig").any():
                rec.update(_ig_gap(t, short))
        out.append(rec)
    return pd.DataFrame(out)


def with_drops(out: pd.DataFrame) -> pd.DataFrame:
    base = out[out["strategy"] == "baseline"]
    for short in SHORT.values():
        out[f"{short}_drop"] = out[short] - (float(base[short].iloc[0]) if len(base) else np.nan)
    return out
