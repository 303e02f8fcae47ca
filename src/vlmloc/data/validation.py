"""One validation pass over a dataset, before any model job: annotations, masks and image files.

Two kinds of failure:

- **The data cannot be trusted at all** (``DataError``, the run stops, ONE message lists every
  offender): a required key is missing or an id is not an integer, an image / category /
  annotation id appears twice, or no sample is left after validation and the filters.
- **One sample is bad**: the sample is dropped, with its reason as a row of the ``rejected`` table
  (``REJECTED_COLUMNS``), and the run goes on. The ``check`` column is one of ``CHECKS``.

A sample is one non-crowd annotation. It is rejected when its own annotation fails, when its image
fails (file missing or undecodable, a mode with no known conversion, a real size that is not the
annotation file's), or when ANOTHER annotation of its image (crowd ones too) fails any check but
``mask_empty``: the uniqueness filter, the list-task answer and the other objects' masks of that
image all read those annotations.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pycocotools import mask as mask_utils

from ..images import ImageError, decode_image

# check -> what failed (docs/data-validation.md says what to do about each)
CHECKS = {
    "unknown_image": "the annotation's image_id is not in the file's images",
    "unknown_category": "the annotation's category_id is not in the file's categories",
    "mask_malformed": "the segmentation cannot be read as a mask of its grid",
    "mask_grid": "the mask's grid (RLE size) is not its image's size",
    "mask_empty": "the mask has no pixel",
    "mask_box": "the annotation's area or bbox disagrees with its mask",
    "image_missing": "the image file does not exist",
    "image_unreadable": "the image file cannot be decoded (truncated, corrupt, not an image)",
    "image_mode": "the image's mode or value range has no known conversion to RGB",
    "image_size": "the image file's real size is not the size the annotation file gives",
    "image_annotation_rejected": "another annotation of the same image was rejected",
}
REJECTED_COLUMNS = ["sample_id", "image_id", "ann_id", "category_id", "file", "check", "reason"]
REQUIRED_KEYS = {
    "images": ("id", "file_name", "width", "height"),
    "annotations": ("id", "image_id", "category_id", "segmentation"),
    "categories": ("id", "name"),
}
INTEGER_KEYS = {
    "images": ("id", "width", "height"),
    "annotations": ("id", "image_id", "category_id"),
    "categories": ("id",),
}


class DataError(ValueError):
    """The dataset cannot be trusted at all; the message lists every offender."""


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_structure(coco: dict, source: str) -> None:
    """Raise one ``DataError`` listing every missing key, non-integer id and duplicate id of
    ``coco`` (a COCO-format dict read from ``source``)."""
    problems: list[str] = []
    for section, keys in REQUIRED_KEYS.items():
        entries = coco.get(section)
        if not isinstance(entries, list):
            problems.append(f"no '{section}' list")
            continue
        for i, entry in enumerate(entries):
            name = _entry_name(section, i, entry)
            if not isinstance(entry, dict):
                problems.append(f"{name} is not an object")
                continue
            missing = [k for k in keys if k not in entry]
            if missing:
                problems.append(f"{name} lacks {', '.join(map(repr, missing))}")
            bad = [k for k in INTEGER_KEYS[section] if k in entry and not _is_int(entry[k])]
            if bad:
                problems.append(
                    f"{name}: {', '.join(f'{k}={entry[k]!r}' for k in bad)} is not an integer"
                )
        ids = Counter(e["id"] for e in entries if isinstance(e, dict) and _is_int(e.get("id")))
        for dup in sorted(k for k, n in ids.items() if n > 1):
            where = ""
            if section == "annotations":
                ims = sorted(
                    {
                        str(e.get("image_id"))
                        for e in entries
                        if isinstance(e, dict) and e.get("id") == dup
                    }
                )
                where = f" (images {', '.join(ims)})"
            problems.append(f"{section[:-1]} id {dup} appears {ids[dup]} times{where}")
    if problems:
        raise DataError(
            f"{source}: the annotation file cannot be trusted, {len(problems)} problem(s); "
            "fix each and rerun:\n  " + "\n  ".join(problems)
        )


def _entry_name(section: str, index: int, entry) -> str:
    what = section[:-1]
    if not isinstance(entry, dict):
        return f"{what} #{index}"
    name = f"{what} #{index} (id {entry.get('id', '?')}"
    if section == "annotations":
        name += f", image {entry.get('image_id', '?')}"
    if section == "images":
        name += f", file {entry.get('file_name', '?')}"
    return name + ")"


def rle_counts(counts: str) -> np.ndarray:
    """The run lengths of a COMPRESSED RLE string (pycocotools' ``rleFrString``, in numpy).

    pycocotools decodes without bounds checks; this reads the runs first so that a bad string is
    a named error, never memory written past the mask."""
    try:
        b = np.frombuffer(counts.encode("ascii"), np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError as e:
        raise ValueError("characters outside the RLE alphabet") from e
    if b.size == 0:
        return np.zeros(0, np.int64)
    if (b < 0).any() or (b > 63).any():
        raise ValueError("characters outside the RLE alphabet")
    last = (b & 0x20) == 0
    if not last[-1]:
        raise ValueError("the string ends inside a number")
    ends = np.flatnonzero(last)
    starts = np.r_[0, ends[:-1] + 1]
    lens = ends - starts + 1
    if lens.max() > 12:
        raise ValueError("a run longer than 60 bits")
    k = np.arange(b.size) - np.repeat(starts, lens)
    x = np.add.reduceat((b & 0x1F) << (5 * k), starts)
    x = np.where((b[ends] & 0x10) != 0, x - (np.int64(1) << (5 * lens)), x)
    runs = x.copy()
    runs[1::2] = np.cumsum(x[1::2])  # run m > 2 is stored as its difference to run m - 2
    runs[2::2] = np.cumsum(x[2::2])
    return runs


def mask_problem(ann: dict, height: int, width: int) -> tuple[str, str] | None:
    """(check, reason) when ``ann``'s segmentation is not a good non-empty mask of the
    ``height`` x ``width`` image with ``ann``'s area and bbox; None when it is."""
    if "invalid" in ann:  # set by coco.normalize where a segmentation could not be converted
        return "mask_malformed", str(ann["invalid"])
    seg = ann["segmentation"]
    size = seg.get("size") if isinstance(seg, dict) else None
    if (
        not isinstance(seg, dict)
        or not isinstance(seg.get("counts"), str)
        or not (isinstance(size, list) and len(size) == 2 and all(_is_int(s) for s in size))
    ):
        return "mask_malformed", "the segmentation is not a compressed RLE {size: [h, w], counts}"
    try:
        runs = rle_counts(seg["counts"])
    except ValueError as e:
        return "mask_malformed", f"the RLE counts cannot be decoded: {e}"
    rh, rw = size
    if (rh, rw) != (height, width):
        return (
            "mask_grid",
            f"the mask's grid (RLE size) is {rh}x{rw} (h x w) but its image is {height}x{width}",
        )
    if (runs < 0).any() or int(runs.sum()) != rh * rw:
        return "mask_malformed", f"the RLE runs cover {int(runs.sum())} pixels, not {rh * rw}"
    area = int(runs[1::2].sum())
    if area == 0:
        return "mask_empty", "the mask is empty (0 pixels)"
    bbox = [float(v) for v in mask_utils.toBbox({"size": size, "counts": seg["counts"].encode()})]
    given_bbox = ann.get("bbox")
    if ann.get("area") != area or not (
        isinstance(given_bbox, list)
        and len(given_bbox) == 4
        and np.allclose(given_bbox, bbox, atol=1e-3)
    ):
        return (
            "mask_box",
            f"area {ann.get('area')} and bbox {given_bbox} disagree with the mask's "
            f"{area} and {bbox}",
        )
    return None


@dataclass
class Validation:
    rejected: pd.DataFrame  # REJECTED_COLUMNS, one row per rejected sample
    conversions: Counter = field(default_factory=Counter)  # mode conversion -> images
    images_checked: int = 0

    def counts(self) -> dict[str, int]:
        return self.rejected["check"].value_counts().to_dict()


def validate_dataset(coco: dict, image_root: str | Path, source: str) -> Validation:
    """Check every annotation of ``coco`` and decode every image holding a candidate sample
    (a non-crowd annotation of a listed image). Raises ``DataError`` for the structural failures
    of ``check_structure``; returns the rejected samples otherwise."""
    check_structure(coco, source)
    images = {im["id"]: im for im in coco["images"]}
    categories = {c["id"] for c in coco["categories"]}
    root = Path(image_root)

    def file_of(image_id) -> str:
        im = images.get(image_id)
        return str(root / im["file_name"]) if im else ""

    own: dict[int, tuple[str, str]] = {}  # annotation id -> (check, reason)
    for a in coco["annotations"]:
        if a["image_id"] not in images:
            own[a["id"]] = ("unknown_image", f"image_id {a['image_id']} is not in {source}")
        elif a["category_id"] not in categories:
            own[a["id"]] = (
                "unknown_category",
                f"category_id {a['category_id']} is not in {source}",
            )
        else:
            im = images[a["image_id"]]
            problem = mask_problem(a, im["height"], im["width"])
            if problem:
                own[a["id"]] = problem

    candidate_images = sorted(
        {
            a["image_id"]
            for a in coco["annotations"]
            if not a.get("iscrowd") and a["image_id"] in images
        }
    )
    image_failed: dict[int, tuple[str, str]] = {}
    conversions: Counter = Counter()
    for image_id in candidate_images:
        im, path = images[image_id], file_of(image_id)
        try:
            rgb, conversion = decode_image(path)
        except ImageError as e:
            image_failed[image_id] = (e.check, str(e))
            continue
        if rgb.size != (im["width"], im["height"]):
            image_failed[image_id] = (
                "image_size",
                f"{path} is {rgb.size[0]}x{rgb.size[1]} pixels (w x h) but {source} gives "
                f"{im['width']}x{im['height']}",
            )
        if conversion:
            conversions[conversion] += 1

    siblings: dict[int, list[str]] = defaultdict(list)
    for a in coco["annotations"]:
        if a["id"] in own and own[a["id"]][0] != "mask_empty" and a["image_id"] in images:
            check, reason = own[a["id"]]
            siblings[a["image_id"]].append(f"annotation {a['id']} ({check}: {reason})")

    rows = []
    for a in coco["annotations"]:
        if a.get("iscrowd"):
            continue
        if a["id"] in own:
            check, reason = own[a["id"]]
        elif a["image_id"] in image_failed:
            check, reason = image_failed[a["image_id"]]
        elif siblings.get(a["image_id"]):
            check = "image_annotation_rejected"
            reason = "another annotation of this image was rejected: " + "; ".join(
                siblings[a["image_id"]]
            )
        else:
            continue
        rows.append(
            {
                "sample_id": f"{a['image_id']}_{a['id']}",
                "image_id": int(a["image_id"]),
                "ann_id": int(a["id"]),
                "category_id": int(a["category_id"]),
                "file": file_of(a["image_id"]),
                "check": check,
                "reason": reason,
            }
        )
    rejected = pd.DataFrame(rows, columns=REJECTED_COLUMNS)
    rejected = rejected.sort_values(["image_id", "ann_id"], kind="stable").reset_index(drop=True)
    return Validation(rejected, conversions, len(candidate_images))


def check_samples(samples: pd.DataFrame, counts: pd.DataFrame, validation: Validation, name: str):
    """Raise ``DataError`` when a sample id appears twice, or when no sample is left: the message
    gives the count after each filter step and the rejections by check."""
    twice = samples["sample_id"][samples["sample_id"].duplicated()].unique().tolist()
    if twice:
        raise DataError(f"dataset {name}: sample ids appear more than once: {', '.join(twice)}")
    if len(samples):
        return
    steps = "\n  ".join(
        f"{r.step}: {r.annotations} annotations in {r.images} images" for r in counts.itertuples()
    )
    rejected = validation.rejected
    by_check = "\n  ".join(
        f"{check}: {n} (e.g. {rejected.loc[rejected['check'] == check, 'reason'].iloc[0]})"
        for check, n in validation.counts().items()
    )
    raise DataError(
        f"dataset {name}: no sample is left after validation and filtering, so no model job can "
        f"run.\nCounts after each step:\n  {steps}\n"
        f"Rejected by validation ({len(rejected)}):\n  {by_check or 'none'}\n"
        "Loosen the config's filter: keys, or fix the data the rejections name."
    )
