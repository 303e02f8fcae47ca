"""Attach the paper's published counts to our filter-count table."""

from __future__ import annotations

import pandas as pd

from ..paper import FILTERED


def filter_counts_with_paper(counts: pd.DataFrame, kind: str) -> pd.DataFrame:
    out = counts.copy()
    out["paper_annotations"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out["paper_images"] = pd.array([pd.NA] * len(out), dtype="Int64")
    if kind in FILTERED and len(out):
        out.loc[out.index[-1], "paper_annotations"] = FILTERED[kind]["annotations"]
        out.loc[out.index[-1], "paper_images"] = FILTERED[kind]["images"]
    return out
