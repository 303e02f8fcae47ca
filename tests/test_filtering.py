import numpy as np

from vlmloc.data.coco import encode_mask, rle_area_bbox
from vlmloc.data.filtering import (
    VALID_STEP,
    FilterSettings,
    filter_samples,
    sample_mask,
    size_bucket,
)


def _ann(aid, image_id, cat, h, w, box, crowd=0):
    m = np.zeros((h, w), bool)
    x, y, bw, bh = box
    m[y : y + bh, x : x + bw] = True
    rle = encode_mask(m)
    area, bbox = rle_area_bbox(rle)
    return {
        "id": aid,
        "image_id": image_id,
        "category_id": cat,
        "segmentation": rle,
        "area": area,
        "bbox": bbox,
        "iscrowd": crowd,
    }


def _coco():
    images = [
        {"id": 1, "file_name": "a.jpg", "width": 400, "height": 300},  # ok image
        {"id": 2, "file_name": "b.jpg", "width": 400, "height": 150},  # too small (min side 150)
    ]
    anns = [
        _ann(10, 1, 1, 300, 400, (10, 10, 50, 50)),  # kept: 2500/120000 = 2.1%
        _ann(11, 1, 2, 300, 400, (0, 0, 5, 5)),  # too small: 0.02%
        _ann(12, 1, 3, 300, 400, (0, 0, 380, 290)),  # too large: 92%
        _ann(13, 1, 4, 300, 400, (100, 100, 40, 40)),  # two instances of cat 4 ...
        _ann(14, 1, 4, 300, 400, (200, 200, 40, 40)),  # ... -> both dropped
        _ann(15, 1, 5, 300, 400, (250, 20, 60, 60)),  # unique among kept but ...
        _ann(16, 1, 5, 300, 400, (0, 290, 4, 4)),  # ... a tiny second instance still counts
        _ann(17, 1, 6, 300, 400, (300, 100, 30, 30), crowd=1),  # crowd: never a target
        _ann(20, 2, 1, 150, 400, (10, 10, 50, 50)),  # image too small
    ]
    cats = [{"id": i, "name": f"c{i}"} for i in range(1, 7)]
    return {"images": images, "annotations": anns, "categories": cats}


def test_filters_in_paper_order_with_counts():
    samples, counts = filter_samples(_coco(), "imgs", FilterSettings())
    assert list(samples["ann_id"]) == [10]
    row = samples.iloc[0]
    assert (
        row["sample_id"] == "1_10" and row["category"] == "c1" and row["image_path"] == "imgs/a.jpg"
    )
    assert row["size_bucket"] == "medium" and abs(row["area_fraction"] - 2500 / 120000) < 1e-12
    assert sample_mask(row).sum() == 2500
    assert list(counts["annotations"]) == [8, 8, 5, 4, 1]
    assert list(counts["images"]) == [2, 2, 2, 1, 1]


def test_rejected_annotations_are_dropped_at_their_own_step():
    samples, counts = filter_samples(_coco(), "imgs", FilterSettings(), rejected=[10, 13])
    assert samples.empty  # 10 was the one sample; 13 still counts as an instance for 14
    assert counts["step"][1] == VALID_STEP and list(counts["annotations"]) == [8, 6, 3, 2, 0]


def test_thresholds_change_the_result():
    samples, _ = filter_samples(
        _coco(), "imgs", FilterSettings(min_side=100, unique_category=False)
    )
    assert sorted(samples["ann_id"]) == [10, 13, 14, 15, 20]


def test_size_bucket_uses_bbox_area():
    assert size_bucket(31, 31) == "small" and size_bucket(32, 32) == "medium"
    assert size_bucket(96, 96) == "medium" and size_bucket(97, 96) == "large"
