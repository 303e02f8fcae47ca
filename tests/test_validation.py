"""The validation pass: each class of bad data becomes a rejected row with its reason (or, where
the data cannot be trusted at all, one error naming every offender), and no good sample changes."""

import copy
import io

import numpy as np
import pandas as pd
import pytest
from conftest import uncompressed_rle
from PIL import Image

from vlmloc.data.coco import encode_mask, normalize, rle_area_bbox
from vlmloc.data.filtering import VALID_STEP, FilterSettings, filter_samples
from vlmloc.data.validation import (
    CHECKS,
    DataError,
    check_samples,
    check_structure,
    mask_problem,
    rle_counts,
    validate_dataset,
)

H, W = 240, 320


def _mask(x, y, s, h=H, w=W):
    m = np.zeros((h, w), bool)
    m[y : y + s, x : x + s] = True
    return m


def _ann(aid, image_id, cat, mask, crowd=0):
    rle = encode_mask(mask)
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


def _jpeg_bytes(w, h, seed):
    rgb = np.random.default_rng(seed).integers(0, 255, (h, w, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG")
    return buf.getvalue()


def _good(root):
    """Three good images, one sample each."""
    images, anns = [], []
    for i in (1, 2, 3):
        (root / f"{i}.jpg").write_bytes(_jpeg_bytes(W, H, i))
        images.append({"id": i, "file_name": f"{i}.jpg", "width": W, "height": H})
        anns.append(_ann(10 * i, i, 1 + i % 2, _mask(20 * i, 30, 50)))
    cats = [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}]
    return {"images": images, "annotations": anns, "categories": cats}


def _with_bad_cases(root, good):
    """The good dataset plus one image (or annotation) for each class of bad data."""
    coco = copy.deepcopy(good)
    add_image = lambda i, name, w=W, h=H: coco["images"].append(  # noqa: E731
        {"id": i, "file_name": name, "width": w, "height": h}
    )
    # 101: a truncated JPEG
    data = _jpeg_bytes(W, H, 101)
    (root / "101.jpg").write_bytes(data[: len(data) // 2])
    add_image(101, "101.jpg")
    coco["annotations"].append(_ann(1010, 101, 1, _mask(10, 10, 50)))
    # 102: the file is 300 wide, the JSON says 320
    (root / "102.jpg").write_bytes(_jpeg_bytes(300, H, 102))
    add_image(102, "102.jpg")
    coco["annotations"].append(_ann(1020, 102, 1, _mask(10, 10, 50)))
    # 103: listed, no file
    add_image(103, "103.jpg")
    coco["annotations"].append(_ann(1030, 103, 1, _mask(10, 10, 50)))
    # 104: a good image whose mask is on a half-size grid (box and area computed on that grid)
    (root / "104.jpg").write_bytes(_jpeg_bytes(W, H, 104))
    add_image(104, "104.jpg")
    coco["annotations"].append(_ann(1040, 104, 1, _mask(10, 10, 50, H // 2, W // 2)))
    # 105: an unknown category id
    (root / "105.jpg").write_bytes(_jpeg_bytes(W, H, 105))
    add_image(105, "105.jpg")
    coco["annotations"].append(_ann(1050, 105, 999, _mask(10, 10, 50)))
    # an annotation of an image that is not listed
    coco["annotations"].append(_ann(1060, 106, 1, _mask(10, 10, 50)))
    # 107: an empty mask
    (root / "107.jpg").write_bytes(_jpeg_bytes(W, H, 107))
    add_image(107, "107.jpg")
    coco["annotations"].append(_ann(1070, 107, 1, np.zeros((H, W), bool)))
    # 108: a good sample whose image also holds a crowd annotation with a broken mask
    (root / "108.jpg").write_bytes(_jpeg_bytes(W, H, 108))
    add_image(108, "108.jpg")
    coco["annotations"].append(_ann(1080, 108, 1, _mask(10, 10, 50)))
    broken = _ann(1081, 108, 2, _mask(100, 100, 40), crowd=1)
    broken["segmentation"]["counts"] = broken["segmentation"]["counts"][:-3]
    coco["annotations"].append(broken)
    # 109: area and bbox that disagree with the mask
    (root / "109.jpg").write_bytes(_jpeg_bytes(W, H, 109))
    add_image(109, "109.jpg")
    coco["annotations"].append(dict(_ann(1090, 109, 1, _mask(10, 10, 50)), bbox=[0, 0, 5, 5]))
    # 110: a 16-bit PNG: converted, not rejected
    g16 = (np.random.default_rng(110).integers(0, 65535, (H, W))).astype(np.uint16)
    Image.fromarray(g16).save(root / "110.png")
    add_image(110, "110.png")
    coco["annotations"].append(_ann(1100, 110, 1, _mask(60, 60, 50)))
    return coco


EXPECTED = {
    1010: ("image_unreadable", "101.jpg: cannot decode image (image file is truncated"),
    1020: ("image_size", "102.jpg is 300x240 pixels (w x h) but ann.json gives 320x240"),
    1030: ("image_missing", "103.jpg: image file not found"),
    1040: ("mask_grid", "grid (RLE size) is 120x160 (h x w) but its image is 240x320"),
    1050: ("unknown_category", "category_id 999 is not in ann.json"),
    1060: ("unknown_image", "image_id 106 is not in ann.json"),
    1070: ("mask_empty", "the mask is empty"),
    1080: (
        "image_annotation_rejected",
        "annotation 1081 (mask_malformed: the RLE counts cannot be decoded",
    ),
    1090: ("mask_box", "bbox [0, 0, 5, 5] disagree"),
}


def _run(coco, root, settings=None):
    settings = settings or FilterSettings(min_side=100)
    val = validate_dataset(coco, root, "ann.json")
    samples, counts = filter_samples(coco, root, settings, rejected=val.rejected["ann_id"])
    return val, samples, counts


def test_each_bad_case_is_one_rejected_row_and_good_samples_do_not_change(tmp_path):
    good = _good(tmp_path)
    _, clean, _ = _run(good, tmp_path)
    val, samples, counts = _run(_with_bad_cases(tmp_path, good), tmp_path)
    rejected = val.rejected.set_index("ann_id")
    assert sorted(rejected.index) == sorted(EXPECTED)
    for ann_id, (check, reason) in EXPECTED.items():
        row = rejected.loc[ann_id]
        assert row["check"] == check and check in CHECKS, (ann_id, row["check"])
        assert reason in row["reason"], (ann_id, row["reason"])
    assert rejected.loc[1010, "file"] == str(tmp_path / "101.jpg")
    assert rejected.loc[1060, "file"] == "" and rejected.loc[1060, "image_id"] == 106
    assert rejected.loc[1080, "sample_id"] == "108_1080"
    # the good samples' rows are exactly those of the clean dataset; the 16-bit image is kept
    assert sorted(samples["ann_id"]) == [10, 20, 30, 1100]
    pd.testing.assert_frame_equal(samples[samples["ann_id"] < 1000].reset_index(drop=True), clean)
    assert val.conversions == {"I;16: rescaled from 16 bit to 8 bit (value / 257)": 1}
    step = counts.set_index("step").loc[VALID_STEP]
    assert step["annotations"] == 4 and counts["annotations"].iloc[0] == 4 + len(EXPECTED)


def test_an_empty_mask_of_another_object_drops_only_that_object(tmp_path):
    coco = _good(tmp_path)
    coco["annotations"].append(_ann(11, 1, 1, np.zeros((H, W), bool)))  # sample 10 is cat 2
    val, samples, _ = _run(coco, tmp_path, FilterSettings(min_side=100, min_area_fraction=0))
    assert val.rejected["ann_id"].tolist() == [11]
    assert sorted(samples["ann_id"]) == [10, 20, 30]


def test_duplicate_and_missing_ids_stop_with_one_message_naming_each(tmp_path):
    coco = _good(tmp_path)
    coco["annotations"].append(_ann(10, 2, 1, _mask(0, 0, 30)))  # id 10 again, image 2
    coco["annotations"].append(_ann(20, 3, 1, _mask(0, 0, 30)))  # id 20 again, image 3
    coco["images"].append({"id": 3, "file_name": "x.jpg", "width": W, "height": H})
    del coco["annotations"][2]["category_id"]
    with pytest.raises(DataError) as e:
        validate_dataset(coco, tmp_path, "ann.json")
    msg = str(e.value)
    assert msg.startswith("ann.json: the annotation file cannot be trusted, 4 problem(s)")
    assert "annotation id 10 appears 2 times (images 1, 2)" in msg
    assert "annotation id 20 appears 2 times (images 2, 3)" in msg
    assert "image id 3 appears 2 times" in msg
    assert "annotation #2 (id 30, image 3) lacks 'category_id'" in msg
    with pytest.raises(DataError, match="'5' is not an integer"):
        check_structure(dict(_good(tmp_path), categories=[{"id": "5", "name": "x"}]), "f")


def test_no_sample_left_names_the_filter_counts_not_the_models(tmp_path):
    coco = _good(tmp_path)
    coco["annotations"][0]["category_id"] = 7  # rejected: unknown category
    val, samples, counts = _run(coco, tmp_path, FilterSettings(min_side=1000))
    with pytest.raises(DataError) as e:
        check_samples(samples, counts, val, "fake")
    msg = str(e.value)
    assert "dataset fake: no sample is left after validation and filtering" in msg
    assert "min image side >= 1000px: 0 annotations in 0 images" in msg
    assert f"{VALID_STEP}: 2 annotations in 2 images" in msg
    assert "unknown_category: 1 (e.g. category_id 7 is not in ann.json)" in msg
    assert "model" not in msg.replace("no model job", "")
    check_samples(*_run(_good(tmp_path), tmp_path)[1:], val, "fake")  # samples left: no error


def test_rle_counts_reads_what_pycocotools_writes():
    rng = np.random.default_rng(0)
    for t in range(200):
        h, w = rng.integers(1, 120, 2)
        m = rng.random((h, w)) < rng.random() if t % 2 else _mask(3, 2, 9, h + 12, w + 12)
        assert rle_counts(encode_mask(m)["counts"]).tolist() == uncompressed_rle(m)["counts"]
    for bad in ("a b", "\x7f", "0P"):  # outside the alphabet; ends inside a number
        with pytest.raises(ValueError):
            rle_counts(bad)
    small = encode_mask(_mask(1, 1, 4, 10, 10))  # counts of a 10x10 grid, labelled as H x W
    ann = {"segmentation": {"size": [H, W], "counts": small["counts"]}, "area": 16}
    assert mask_problem(ann, H, W) == (
        "mask_malformed",
        f"the RLE runs cover 100 pixels, not {H * W}",
    )


def test_normalize_leaves_bad_annotations_to_the_validation_pass(tmp_path):
    good = _good(tmp_path)
    raw = copy.deepcopy(good)
    for a in raw["annotations"]:  # as COCO-ReM writes them
        a["segmentation"] = uncompressed_rle(_mask(20, 30, 50))
    raw["annotations"][1]["segmentation"] = uncompressed_rle(_mask(10, 10, 20, H // 2, W // 2))
    raw["annotations"].append(dict(raw["annotations"][0], id=77, image_id=555))
    raw["annotations"].append(dict(raw["annotations"][0], id=78, segmentation={"size": [H]}))
    out = normalize(raw, "rem.json")  # no KeyError for image 555
    by_id = {a["id"]: a for a in out["annotations"]}
    assert by_id[78]["invalid"].startswith("the segmentation cannot be converted")
    assert by_id[20]["segmentation"]["size"] == [H // 2, W // 2]
    val = validate_dataset(out, tmp_path, "rem.json")
    assert dict(zip(val.rejected["ann_id"], val.rejected["check"], strict=True)) == {
        20: "mask_grid",
        77: "unknown_image",
        78: "mask_malformed",
        # 78 is in image 1: its broken mask rejects image 1's other sample too
        10: "image_annotation_rejected",
    }
    with pytest.raises(DataError, match="annotation id 77 appears 2 times"):
        normalize(dict(raw, annotations=raw["annotations"] + [raw["annotations"][-2]]), "rem.json")
