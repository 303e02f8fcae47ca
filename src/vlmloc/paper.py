"""Numbers published in the paper, shown next to ours in tables (never used to compute anything)."""

from __future__ import annotations

# Sec. 2.2 / appendix 6.1 and 7.3: sample counts after the appendix 6.1 filters.
FILTERED = {"coco": {"annotations": 6403, "images": 3560}, "voc": {"annotations": 1957, "images": 1585}}
# Sec. 2.2: after the per-model hallucination filter, intersected over the three models.
PROBING = {"coco": {"annotations": 2248, "images": 1720}}
