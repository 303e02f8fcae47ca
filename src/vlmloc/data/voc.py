"""Pascal VOC 2012 segmentation (trainval) -> COCO-format JSON with instance masks.

Instances come from ``SegmentationObject`` (palette index = instance number, 0 background,
255 void border); each instance's class is the majority ``SegmentationClass`` label under it.
Only the images listed in ``ImageSets/Segmentation/<split>.txt`` have masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..images import open_label_map
from .coco import encode_mask, rle_area_bbox

VOC_CLASSES = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]
# Names as they are asked in prompts ("the dining table", not "the diningtable").
PROMPT_NAMES = {
    "aeroplane": "airplane",
    "diningtable": "dining table",
    "pottedplant": "potted plant",
    "tvmonitor": "tv monitor",
}


def voc_image_id(stem: str) -> int:
    return int(stem.replace("_", ""))


def convert(voc_root: str | Path, split: str = "trainval") -> dict:
    """``voc_root`` is the folder holding JPEGImages/, SegmentationObject/, ... (VOC2012)."""
    root = Path(voc_root)
    stems = (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()
    categories = [{"id": i + 1, "name": PROMPT_NAMES.get(n, n)} for i, n in enumerate(VOC_CLASSES)]
    images, anns = [], []
    for stem in stems:
        obj = open_label_map(root / "SegmentationObject" / f"{stem}.png")
        cls = open_label_map(root / "SegmentationClass" / f"{stem}.png")
        if obj.shape != cls.shape:
            raise ValueError(
                f"{stem}: SegmentationObject is {obj.shape} but SegmentationClass is {cls.shape}"
            )
        h, w = obj.shape
        image_id = voc_image_id(stem)
        images.append(
            {"id": image_id, "file_name": f"{stem}.jpg", "width": int(w), "height": int(h)}
        )
        for inst in np.unique(obj):
            if inst in (0, 255):
                continue
            mask = obj == inst
            labels = cls[mask]
            labels = labels[(labels > 0) & (labels < 255)]
            if labels.size == 0:
                continue
            category_id = int(np.bincount(labels).argmax())
            rle = encode_mask(mask)
            area, bbox = rle_area_bbox(rle)
            anns.append(
                {
                    "id": image_id * 100 + int(inst),
                    "image_id": image_id,
                    "category_id": category_id,
                    "segmentation": rle,
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": anns, "categories": categories}
