"""COCO-format annotations: mask encoding and the COCO-ReM label correction.

Every dataset of the workflow is brought to one COCO-format JSON with COMPRESSED RLE masks
(``counts`` a str), recomputed ``area`` (mask pixels) and ``bbox`` (x, y, w, h of the mask).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from .validation import DataError, check_structure, rle_counts


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


def normalize(coco: dict, source: str = "the annotation file") -> dict:
    """Return a copy of ``coco`` with compressed-RLE masks, recomputed area and bbox.

    Structural faults (a missing key, a non-integer or duplicate id) stop here with one
    ``DataError`` naming ``source`` and every offender. A fault of one annotation does not: an
    annotation whose image is not listed keeps its segmentation as given, and one whose
    segmentation cannot be converted keeps it with the reason in ``invalid``; the validation
    pass (``data.validation``) rejects both, by name, with the rest of its checks.
    """
    check_structure(coco, source)
    images = {im["id"]: im for im in coco["images"]}
    anns = []
    for ann in coco["annotations"]:
        out = {
            "id": int(ann["id"]),
            "image_id": int(ann["image_id"]),
            "category_id": int(ann["category_id"]),
            "segmentation": ann["segmentation"],
            "area": ann.get("area"),
            "bbox": ann.get("bbox"),
            "iscrowd": int(ann.get("iscrowd", 0)),
        }
        im = images.get(ann["image_id"])
        if im is not None:
            try:
                rle = to_compressed_rle(ann["segmentation"], im["height"], im["width"])
                runs = rle_counts(rle["counts"])
                if (runs < 0).any() or int(runs.sum()) != rle["size"][0] * rle["size"][1]:
                    raise ValueError(
                        f"its RLE runs cover {int(runs.sum())} pixels, not "
                        f"{rle['size'][0]}x{rle['size'][1]}"
                    )
            except (ValueError, TypeError, KeyError, IndexError) as e:
                out["invalid"] = f"the segmentation cannot be converted to a mask: {e}"
            else:
                out["segmentation"] = rle
                out["area"], out["bbox"] = rle_area_bbox(rle)
        anns.append(out)
    keep_image = ("id", "file_name", "width", "height")
    return {
        "images": [{k: im[k] for k in keep_image} for im in coco["images"]],
        "annotations": anns,
        "categories": [{"id": c["id"], "name": c["name"]} for c in coco["categories"]],
    }


def apply_label_correction(
    original: dict, corrected: dict, source: str = "the corrected annotation file"
) -> dict:
    """COCO-ReM replaces COCO's instances of the same images (Singh et al. 2024).

    Images come from the original file (ReM reuses val2017's images and ids); annotations and
    categories come from the corrected file. Images ReM does not list keep no annotations.
    """
    if not isinstance(corrected.get("images"), list) or not all(
        isinstance(im, dict) and "id" in im for im in corrected["images"]
    ):
        raise DataError(f"{source}: no 'images' list with an 'id' in every entry")
    rem_images = {im["id"] for im in corrected["images"]}
    missing = [im["id"] for im in original["images"] if im["id"] not in rem_images]
    merged = {
        "images": [im for im in original["images"] if im["id"] in rem_images],
        "annotations": corrected["annotations"],
        "categories": corrected.get("categories") or original["categories"],
    }
    out = normalize(merged, source)
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
