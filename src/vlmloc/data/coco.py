"""COCO-format annotations: mask encoding and the COCO-ReM label correction.

Every dataset of the workflow is brought to one COCO-format JSON with COMPRESSED RLE masks
(``counts`` a str), recomputed ``area`` (mask pixels) and ``bbox`` (x, y, w, h of the mask).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils


def to_compressed_rle(segmentation, height: int, width: int) -> dict:
    """Any COCO segmentation (polygons, uncompressed RLE, compressed RLE) -> compressed RLE.

    COCO-ReM writes UNCOMPRESSED RLE (``counts`` a list of ints); pycocotools only decodes the
    compressed form, hence ``frPyObjects`` first.
    """
    if isinstance(segmentation, list):  # polygons
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict):
        rle = {"size": list(segmentation["size"]), "counts": segmentation["counts"]}
    else:
        raise ValueError(f"unknown segmentation type: {type(segmentation).__name__}")
    counts = rle["counts"]
    return {
        "size": [int(s) for s in rle["size"]],
        "counts": counts.decode() if isinstance(counts, bytes) else counts,
    }


def encode_mask(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}


def decode_mask(rle: dict) -> np.ndarray:
    counts = rle["counts"]
    r = {"size": rle["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
    return mask_utils.decode(r).astype(bool)


def rle_area_bbox(rle: dict) -> tuple[int, list[float]]:
    r = {"size": rle["size"], "counts": rle["counts"].encode()}
    return int(mask_utils.area(r)), [float(v) for v in mask_utils.toBbox(r)]


def normalize(coco: dict) -> dict:
    """Return a copy of ``coco`` with compressed-RLE masks, recomputed area and bbox."""
    images = {im["id"]: im for im in coco["images"]}
    anns = []
    for ann in coco["annotations"]:
        im = images[ann["image_id"]]
        rle = to_compressed_rle(ann["segmentation"], im["height"], im["width"])
        area, bbox = rle_area_bbox(rle)
        anns.append(
            {
                "id": int(ann["id"]),
                "image_id": int(ann["image_id"]),
                "category_id": int(ann["category_id"]),
                "segmentation": rle,
                "area": area,
                "bbox": bbox,
                "iscrowd": int(ann.get("iscrowd", 0)),
            }
        )
    keep_image = ("id", "file_name", "width", "height")
    return {
        "images": [{k: im[k] for k in keep_image} for im in coco["images"]],
        "annotations": anns,
        "categories": [{"id": c["id"], "name": c["name"]} for c in coco["categories"]],
    }


def apply_label_correction(original: dict, corrected: dict) -> dict:
    """COCO-ReM replaces COCO's instances of the same images (Singh et al. 2024).

    Images come from the original file (ReM reuses val2017's images and ids); annotations and
    categories come from the corrected file. Images ReM does not list keep no annotations.
    """
    rem_images = {im["id"] for im in corrected["images"]}
    missing = [im["id"] for im in original["images"] if im["id"] not in rem_images]
    merged = {
        "images": [im for im in original["images"] if im["id"] in rem_images],
        "annotations": corrected["annotations"],
        "categories": corrected.get("categories") or original["categories"],
    }
    out = normalize(merged)
    out["info"] = {"label_correction": "coco_rem", "images_without_rem_entry": len(missing)}
    return out


def load_json(path: str | Path) -> dict:
    with open(path) as f:
        return json.load(f)


def write_json(obj: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f)
    tmp.replace(path)
