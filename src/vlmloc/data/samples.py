"""The samples a job reads (all, or a subset's ids) and, from the dataset's COCO json, each
sample's categories and the other objects of its image."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_samples(samples: str | Path, subset_ids: str | Path | None = None) -> pd.DataFrame:
    """The dataset's samples, or those named in a subset's ids file (one sample id a line)."""
    df = pd.read_parquet(samples)
    if subset_ids:
        ids = Path(subset_ids).read_text().split()
        df = df[df["sample_id"].isin(set(ids))].reset_index(drop=True)
        if len(df) != len(set(ids)):
            raise ValueError(
                f"{subset_ids}: {len(set(ids)) - len(df)} sample ids are not in {samples}"
            )
    return df


def categories_of(coco: dict, samples: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The dataset's category names in id order (the list prompt's order), and per sample the
    categories present in its image, in the same order (the gold list answer)."""
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    names = {c["id"]: c["name"] for c in cats}
    by_image: dict[int, set[int]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], set()).add(a["category_id"])
    present = [
        [names[c] for c in sorted(by_image.get(int(i), ()))] for i in samples.get("image_id", [])
    ]
    return [c["name"] for c in cats], present


def other_objects(coco: dict, samples: pd.DataFrame) -> list[list[dict]] | None:
    """Per sample, the segmentation (RLE) of every OTHER annotation of its image (crowd ones too);
    None when the samples do not name their annotation (``ann_id``)."""
    if "ann_id" not in samples or "image_id" not in samples:
        return None
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(int(a["image_id"]), []).append(a)
    return [
        [a["segmentation"] for a in by_image.get(int(i), []) if int(a["id"]) != int(ann)]
        for i, ann in zip(samples["image_id"], samples["ann_id"], strict=True)
    ]
