"""The one image opener: each mode it knows converted as documented, the rest refused by path."""

import io
import logging

import numpy as np
import pytest
from PIL import Image

from vlmloc import images
from vlmloc.images import ALPHA_BACKGROUND, ImageError, decode_image, image_size, open_image


def _save(img: Image.Image, path, fmt=None):
    img.save(path, format=fmt)
    return path


def test_sixteen_bit_gray_is_rescaled_not_saturated(tmp_path):
    values = np.array([[0, 257, 32896], [65535, 1000, 65280]], np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "g16.png")
    assert Image.open(path).mode == "I;16"
    # Pillow's own convert("RGB") saturates: every value above 255 becomes white
    assert (np.asarray(Image.open(path).convert("RGB"))[0, 1:] == 255).all()
    rgb = np.asarray(open_image(path))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert rgb[..., 0].tolist() == [[0, 1, 128], [255, 4, 254]]
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_int_and_float_modes(tmp_path):
    i32 = Image.fromarray(np.array([[0, 65535]], np.int32))
    assert i32.mode == "I" and np.asarray(open_image(i32))[0, :, 0].tolist() == [0, 255]
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert np.asarray(open_image(unit))[0, :, 1].tolist() == [0, 128, 255]
    levels = Image.fromarray(np.array([[0.0, 2.0, 200.0]], np.float32))
    assert np.asarray(open_image(levels))[0, :, 1].tolist() == [0, 2, 200]
    hot = _save(Image.fromarray(np.array([[0.0, 300.0]], np.float32)), tmp_path / "f.tiff")
    with pytest.raises(ImageError, match=r"f\.tiff: mode F holds values up to 300") as e:
        open_image(hot)
    assert e.value.check == "image_mode"
    with pytest.raises(ImageError, match="values -5"):
        open_image(Image.fromarray(np.array([[-5, 3]], np.int32)))


def test_alpha_is_composited_on_the_documented_background(tmp_path):
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (200, 10, 10, 255)  # opaque: kept
    rgba[0, 1] = (200, 10, 10, 0)  # transparent: the background
    rgba[0, 2] = (0, 0, 0, 128)  # half: between
    path = _save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png")
    out = np.asarray(open_image(path)).astype(int)
    assert out[0, 0].tolist() == [200, 10, 10]
    assert out[0, 1].tolist() == list(ALPHA_BACKGROUND)
    assert all(abs(v - 127) <= 1 for v in out[0, 2])
    la = Image.fromarray(np.array([[[50, 0], [50, 255]]], np.uint8), "LA")
    assert np.asarray(open_image(la))[0, :, 0].tolist() == [255, 50]
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 255, 0, 0])
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    assert np.asarray(open_image(pal))[0].tolist() == [list(ALPHA_BACKGROUND), [255, 0, 0]]


def test_eight_bit_modes_as_pillow_converts_them(tmp_path):
    for mode in ("L", "1", "CMYK", "YCbCr"):
        img = Image.new(mode, (4, 3))
        assert np.array_equal(np.asarray(open_image(img)), np.asarray(img.convert("RGB"))), mode
    rgb = Image.new("RGB", (2, 2), (1, 2, 3))
    assert open_image(rgb) is rgb


def test_bad_files_are_named(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buf, format="JPEG"
    )
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    for name, check in (("cut.jpg", "image_unreadable"), ("junk.jpg", "image_unreadable")):
        with pytest.raises(ImageError, match=name) as e:
            open_image(tmp_path / name)
        assert e.value.check == check and e.value.path == str(tmp_path / name)
    with pytest.raises(ImageError, match="not found") as e:
        open_image(tmp_path / "gone.jpg")
    assert e.value.check == "image_missing"
    assert image_size(_save(Image.new("RGB", (7, 5)), tmp_path / "ok.png")) == (7, 5)


def test_each_conversion_is_logged_once_per_folder(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(images, "_announced", set())
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        for i in range(3):
            _save(Image.fromarray(np.full((2, 2), 1000 * i, np.uint16)), tmp_path / d / f"{i}.png")
    with caplog.at_level(logging.INFO, logger="vlmloc.images"):
        for d in ("a", "b"):
            for i in range(3):
                assert decode_image(tmp_path / d / f"{i}.png")[1].startswith("I;16: rescaled")
    lines = [r.getMessage() for r in caplog.records if r.name == "vlmloc.images"]
    assert len(lines) == 2 and "0.png" in lines[0] and str(tmp_path / "b") in lines[1]
