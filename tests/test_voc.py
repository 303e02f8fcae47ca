import numpy as np
from PIL import Image

from vlmloc.data.coco import decode_mask
from vlmloc.data.voc import convert


def _palette_png(arr, path):
    im = Image.fromarray(arr.astype(np.uint8), mode="P")
    im.putpalette([v for i in range(256) for v in (i, i, i)])
    im.save(path)


def test_instances_and_classes(tmp_path):
    root = tmp_path / "VOC2012"
    for d in ("JPEGImages", "SegmentationObject", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    (root / "ImageSets/Segmentation/trainval.txt").write_text("2007_000032\n")
    obj = np.zeros((60, 80), np.uint8)
    cls = np.zeros((60, 80), np.uint8)
    obj[5:20, 5:30], cls[5:20, 5:30] = 1, 15  # a person
    obj[30:50, 40:70], cls[30:50, 40:70] = 2, 11  # a dining table
    obj[4, 4:31], cls[4, 4:31] = 255, 255  # void border stays out of masks
    _palette_png(obj, root / "SegmentationObject/2007_000032.png")
    _palette_png(cls, root / "SegmentationClass/2007_000032.png")
    coco = convert(root, "trainval")
    assert coco["images"] == [
        {"id": 2007000032, "file_name": "2007_000032.jpg", "width": 80, "height": 60}
    ]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    got = {names[a["category_id"]]: a for a in coco["annotations"]}
    assert set(got) == {"person", "dining table"}
    assert got["person"]["area"] == 15 * 25 and got["person"]["bbox"] == [5.0, 5.0, 25.0, 15.0]
    assert decode_mask(got["dining table"]["segmentation"]).sum() == 20 * 30
