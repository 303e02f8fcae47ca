import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vlmloc.data.coco import encode_mask
from vlmloc.data.inpainting import LamaInpainter, OpenCVInpainter, dilate, remove_objects, shard_of


def test_shards_partition_the_samples():
    df = pd.DataFrame({"sample_id": [f"s{i:02d}" for i in range(23)]}).sample(
        frac=1, random_state=0
    )
    parts = [set(shard_of(df, k, 4)["sample_id"]) for k in range(4)]
    assert set().union(*parts) == set(df["sample_id"]) and sum(map(len, parts)) == 23
    with pytest.raises(ValueError):
        shard_of(df, 4, 4)


def test_dilate_grows_mask():
    m = np.zeros((20, 20), bool)
    m[8:12, 8:12] = True
    d = dilate(m, 2)
    assert d.sum() > m.sum() and d[m].all() and not d[0, 0]
    assert dilate(m, 0) is m


def test_opencv_removes_object_and_keeps_the_rest(tmp_path):
    img = np.full((64, 80, 3), 120, np.uint8)
    img[20:40, 30:50] = (255, 0, 0)
    mask = np.zeros((64, 80), bool)
    mask[20:40, 30:50] = True
    Image.fromarray(img).save(tmp_path / "a.png")
    row = {
        "sample_id": "1_1",
        "image_path": str(tmp_path / "a.png"),
        "width": 80,
        "height": 64,
        "mask_rle": encode_mask(mask)["counts"],
        "ann_id": 1,
    }
    index = remove_objects(pd.DataFrame([row]), tmp_path / "out", backend="opencv", dilate_px=2)
    out = np.asarray(Image.open(index.loc[0, "removed_path"]), dtype=int)
    far = ~dilate(mask, 3)
    assert np.array_equal(out[far], img[far].astype(int))
    assert np.abs(out[mask] - 120).max() < 30  # red object replaced by the grey surround
    assert OpenCVInpainter().radius == 5


def test_lama_names_missing_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="lama_weights"):
        LamaInpainter(weights=str(tmp_path / "missing.pt"))


def test_object_removal_reads_images_through_the_opener(tmp_path):
    # a 16-bit gray image: Pillow's convert("RGB") would make it all white
    gray = np.full((64, 80), 120 * 257, np.uint16)
    gray[20:40, 30:50] = 250 * 257
    Image.fromarray(gray).save(tmp_path / "g16.png")
    mask = np.zeros((64, 80), bool)
    mask[20:40, 30:50] = True
    row = {
        "sample_id": "1_1",
        "image_path": str(tmp_path / "g16.png"),
        "width": 80,
        "height": 64,
        "mask_rle": encode_mask(mask)["counts"],
        "ann_id": 1,
    }
    index = remove_objects(pd.DataFrame([row]), tmp_path / "out", backend="opencv", dilate_px=2)
    out = np.asarray(Image.open(index.loc[0, "removed_path"]), dtype=int)
    far = ~dilate(mask, 3)
    assert (out[far] == 120).all()
    assert np.abs(out[mask] - 120).max() < 30
