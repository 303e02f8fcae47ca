"""Numbers published in the paper, shown next to ours in tables (never used to compute anything)."""

from __future__ import annotations

# Sec. 2.2 / appendix 6.1 and 7.3: sample counts after the appendix 6.1 filters.
FILTERED = {"coco": {"annotations": 6403, "images": 3560}, "voc": {"annotations": 1957, "images": 1585}}
# Sec. 2.2: after the per-model hallucination filter, intersected over the three models.
PROBING = {"coco": {"annotations": 2248, "images": 1720}}
# Table 1, baseline row (probing subset): localization score and list classification, in %.
TABLE1_BASELINE = {
    "llava-1.5-7b": {"loc": 35.34, "cls": 58.10},
    "llava-1.5-13b": {"loc": 46.98, "cls": 65.30},
    "internvl-3.5-8b": {"loc": 72.64, "cls": 83.30},
}
# Appendix 6.2: false-positive rates on object-removed images across the three models.
FPR_RANGE = {"list": "0.27-0.45", "binary": "0.56-0.70"}
