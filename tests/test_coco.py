import numpy as np
from conftest import uncompressed_rle
from pycocotools import mask as mask_utils

from vlmloc.data.coco import (
    apply_label_correction,
    decode_mask,
    encode_mask,
    normalize,
    to_compressed_rle,
)


def test_uncompressed_rle_is_converted():
    mask = np.zeros((30, 40), bool)
    mask[5:12, 8:30] = True
    rle = to_compressed_rle(uncompressed_rle(mask), 30, 40)
    assert isinstance(rle["counts"], str)
    assert np.array_equal(decode_mask(rle), mask)


def test_polygon_and_compressed_inputs():
    poly = [[10, 10, 20, 10, 20, 20, 10, 20]]
    rle = to_compressed_rle(poly, 32, 32)
    assert 90 <= mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}) <= 130
    m = np.zeros((8, 8), bool)
    m[2:4, 2:6] = True
    assert np.array_equal(decode_mask(to_compressed_rle(encode_mask(m), 8, 8)), m)


def test_label_correction_replaces_annotations():
    m1 = np.zeros((50, 60), bool)
    m1[10:20, 10:20] = True
    m2 = np.zeros((50, 60), bool)
    m2[10:30, 5:25] = True  # ReM's finer/larger mask of the same object
    images = [
        {"id": 1, "file_name": "1.jpg", "width": 60, "height": 50},
        {"id": 2, "file_name": "2.jpg", "width": 60, "height": 50},
    ]
    cats = [{"id": 3, "name": "dog", "supercategory": "animal"}]
    original = {
        "images": images,
        "annotations": [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 3,
                "segmentation": encode_mask(m1),
                "iscrowd": 0,
            }
        ],
        "categories": cats,
    }
    corrected = {
        "images": images[:1],
        "annotations": [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 3,
                "segmentation": uncompressed_rle(m2),
                "iscrowd": 0,
            },
            {
                "id": 2024000001,
                "image_id": 1,
                "category_id": 3,
                "segmentation": uncompressed_rle(m1),
                "iscrowd": 0,
            },
        ],
        "categories": cats,
    }
    out = apply_label_correction(original, corrected)
    assert [a["id"] for a in out["annotations"]] == [7, 2024000001]
    assert out["annotations"][0]["area"] == m2.sum()
    assert out["annotations"][0]["bbox"] == [5.0, 10.0, 20.0, 20.0]
    assert [im["id"] for im in out["images"]] == [1]
    assert normalize(original)["annotations"][0]["area"] == m1.sum()
