import numpy as np
import pytest
from PIL import Image

from vlmloc.data.coco import decode_mask, load_json
from vlmloc.data.filtering import size_bucket
from vlmloc.data.shapes import ShapesSpec, generate, removed_image_name


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    coco = generate(out, n_images=30, seed=3, spec=ShapesSpec())
    return out, coco


def test_deterministic_from_seed(shapes, tmp_path):
    out, coco = shapes
    again = generate(tmp_path, n_images=30, seed=3, spec=ShapesSpec())
    assert again["annotations"] == coco["annotations"]
    a = np.asarray(Image.open(out / "images" / "000007.png"))
    b = np.asarray(Image.open(tmp_path / "images" / "000007.png"))
    assert np.array_equal(a, b)
    other = generate(tmp_path / "o", n_images=30, seed=4, spec=ShapesSpec())
    assert other["annotations"] != coco["annotations"]


def test_categories_are_colour_shape_words(shapes):
    _, coco = shapes
    names = {c["name"] for c in coco["categories"]}
    assert "red circle" in names and len(names) == 12
    assert all(len(n.split()) == 2 for n in names)


def test_variety_of_sizes_and_counts(shapes):
    _, coco = shapes
    aspects = [im["width"] / im["height"] for im in coco["images"]]
    assert min(aspects) < 0.8 and max(aspects) > 1.25
    per_image = np.bincount([a["image_id"] for a in coco["annotations"]])[1:]
    assert per_image.min() >= 1 and per_image.max() <= 4 and len(set(per_image)) >= 3
    buckets = {size_bucket(*a["bbox"][2:]) for a in coco["annotations"]}
    assert buckets == {"small", "medium", "large"}


def test_removed_images_are_exact(shapes):
    out, coco = shapes
    images = {im["id"]: im for im in coco["images"]}
    for ann in coco["annotations"][:25]:
        im = images[ann["image_id"]]
        orig = np.asarray(Image.open(out / "images" / im["file_name"]), dtype=int)
        rem = np.asarray(
            Image.open(out / "removed" / removed_image_name(im["id"], ann["id"])), dtype=int
        )
        mask = decode_mask(ann["segmentation"])
        assert mask.shape == orig.shape[:2] and mask.sum() == ann["area"]
        assert np.array_equal(orig[~mask], rem[~mask])  # nothing outside the object changes
        # inside, the object colour is gone: pixels differ from the original
        assert (np.abs(orig[mask] - rem[mask]).sum(axis=1) > 0).mean() > 0.9


def test_annotations_roundtrip_through_json(shapes):
    out, coco = shapes
    assert load_json(out / "annotations.json")["annotations"] == coco["annotations"]
