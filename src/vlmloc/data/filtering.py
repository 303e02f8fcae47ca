"""The paper's sample filters (appendix 6.1) and the tidy sample table.

A sample is one (image, target annotation) pair. Before the filters, the samples the validation
pass rejected (``data.validation``) are dropped, as a step of their own. Filters, in the
appendix's order: object size (area fraction of the image), image resolution (shorter side),
uniqueness (the image holds exactly one instance of the target's category, counting every
instance, crowd ones too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .coco import decode_mask

SAMPLE_COLUMNS = [
    "sample_id",
    "image_id",
    "ann_id",
    "category_id",
    "category",
    "image_path",
    "width",
    "height",
    "bbox_x",
    "bbox_y",
    "bbox_w",
    "bbox_h",
    "area",
    "area_fraction",
    "size_bucket",
    "mask_rle",
]


@dataclass(frozen=True)
class FilterSettings:
    min_area_fraction: float = 0.004
    max_area_fraction: float = 0.60
    min_side: int = 200
    unique_category: bool = True


def size_bucket(bbox_w: float, bbox_h: float) -> str:
    """COCO convention on the BOUNDING-BOX area, as the paper's Fig. 10 states."""
    a = bbox_w * bbox_h
    return "small" if a < 32**2 else ("medium" if a <= 96**2 else "large")


VALID_STEP = "valid image and annotation (rejected: tables/rejected.tsv)"


def filter_samples(
    coco: dict,
    image_dir: str | Path,
    settings: FilterSettings,
    rejected: Iterable[int] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (samples, counts): the kept samples and a table of counts after each step.

    ``rejected``: the annotation ids the validation pass rejected (annotations of unlisted images
    or categories are dropped at that step in any case)."""
    images = {im["id"]: im for im in coco["images"]}
    names = {c["id"]: c["name"] for c in coco["categories"]}
    instances = Counter((a["image_id"], a["category_id"]) for a in coco["annotations"])
    steps: list[tuple[str, list[dict]]] = []

    kept = [a for a in coco["annotations"] if not a.get("iscrowd", 0)]
    steps.append(("annotations (non-crowd)", kept))
    bad = {int(i) for i in rejected}
    kept = [
        a
        for a in kept
        if a["id"] not in bad and a["image_id"] in images and a["category_id"] in names
    ]
    steps.append((VALID_STEP, kept))

    def frac(a):
        im = images[a["image_id"]]
        return a["area"] / float(im["width"] * im["height"])

    kept = [a for a in kept if settings.min_area_fraction <= frac(a) <= settings.max_area_fraction]
    steps.append(
        (
            f"object size {settings.min_area_fraction:g}..{settings.max_area_fraction:g} of image",
            kept,
        )
    )
    kept = [
        a
        for a in kept
        if min(images[a["image_id"]]["width"], images[a["image_id"]]["height"]) >= settings.min_side
    ]
    steps.append((f"min image side >= {settings.min_side}px", kept))
    if settings.unique_category:
        kept = [a for a in kept if instances[(a["image_id"], a["category_id"])] == 1]
        steps.append(("single instance of the category", kept))

    counts = pd.DataFrame(
        [
            {"step": s, "annotations": len(a), "images": len({x["image_id"] for x in a})}
            for s, a in steps
        ]
    )
    rows = []
    for a in kept:
        im = images[a["image_id"]]
        x, y, w, h = a["bbox"]
        rows.append(
            {
                "sample_id": f"{a['image_id']}_{a['id']}",
                "image_id": int(a["image_id"]),
                "ann_id": int(a["id"]),
                "category_id": int(a["category_id"]),
                "category": names[a["category_id"]],
                "image_path": str(Path(image_dir) / im["file_name"]),
                "width": int(im["width"]),
                "height": int(im["height"]),
                "bbox_x": float(x),
                "bbox_y": float(y),
                "bbox_w": float(w),
                "bbox_h": float(h),
                "area": int(a["area"]),
                "area_fraction": frac(a),
                "size_bucket": size_bucket(w, h),
                "mask_rle": a["segmentation"]["counts"],
            }
        )
    samples = pd.DataFrame(rows, columns=SAMPLE_COLUMNS).sort_values("sample_id", kind="stable")
    return samples.reset_index(drop=True), counts


def sample_mask(row) -> np.ndarray:
    """The target's boolean mask (H, W) from a sample row."""
    return decode_mask({"size": [int(row["height"]), int(row["width"])], "counts": row["mask_rle"]})
