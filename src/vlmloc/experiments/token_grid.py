"""What the token-grid figures show (appendix Fig. 7 and integrated gradients on the token grid),
from cached files: which samples, and the per-token IG importances the token-ablation job stored.

The samples: per size bucket of the samples table (``small``, ``medium``, ``large``: COCO's
convention on the bounding-box area, ``data.filtering.size_bucket``), the probing-subset sample
whose object area (``area_fraction``, the mask's share of the image) is the median (the lower
one; ties by sample id) among the bucket's ELONGATED images, long side >= ``ELONGATED`` x short
side, or among all of the bucket's when it has none. Elongated images show what a square one
hides: LLaVA's pad-to-square bars and InternVL's tiles (``max_tiles`` >= 2 cuts them). Then an
image already shown for a smaller bucket is passed over while there are others. The same
samples for every model; a bucket with no sample is left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SIZE_BUCKETS = ("small", "medium", "large")
ELONGATED = 1.6  # long side / short side


def grid_examples(samples: pd.DataFrame) -> pd.DataFrame:
    """One sample per size bucket (module docstring), in the order small, medium, large."""
    out = []
    for bucket in SIZE_BUCKETS:
        b = samples[samples["size_bucket"] == bucket]
        long = b[["width", "height"]].max(axis=1) >= ELONGATED * b[["width", "height"]].min(axis=1)
        if long.any():
            b = b[long]
        fresh = ~b["image_id"].isin([r["image_id"] for r in out])
        if fresh.any():
            b = b[fresh]
        b = b.sort_values(["area_fraction", "sample_id"], kind="stable")
        if len(b):
            out.append(b.iloc[(len(b) - 1) // 2])
    return pd.DataFrame(out).reset_index(drop=True) if out else samples.iloc[:0]


def ig_importances(rows: pd.DataFrame, task: str) -> dict[str, np.ndarray]:
    """Per sample, every visual token's IG importance for ``task`` (sequence order), from the
    token-ablation rows (``ig_importance``: on the rows of each task's first IG condition)."""
    if "ig_importance" not in rows.columns:
        raise ValueError(
            "the token-ablation rows have no ig_importance column: they were written before the "
            "jobs stored per-token importances; rerun them (snakemake --forcerun run_experiment)"
        )
    have = rows[(rows["task"] == task) & rows["ig_importance"].notna()]
    dup = have["sample_id"].duplicated()
    if dup.any():
        raise ValueError(
            f"{int(dup.sum())} samples have more than one {task} importance row "
            f"(e.g. {have.loc[dup, 'sample_id'].iloc[0]})"
        )
    return {
        sid: np.asarray(v, dtype=np.float64)
        for sid, v in zip(have["sample_id"], have["ig_importance"], strict=True)
    }
