"""Reading images: the one place that opens an image file, below every layer that reads images
(data validation, object removal, the runner, the mean embedding, probes, figures).

``open_image`` returns an 8-bit RGB image at the file's stored size. It converts the modes it
knows, each in a documented way:

- 8-bit modes (``1``, ``L``, ``P``, ``RGB``, ``RGBX``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``): Pillow's
  own conversion to RGB;
- 16-bit grayscale (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) and 32-bit integer ``I`` holding
  0..65535: rescaled to 0..255 (value / 257, rounded), so 65535 is white, not every value above 255;
- 32-bit float ``F``: values in 0..1 are scaled by 255; values in 0..255 (some above 1) are taken as
  8-bit levels; anything else (negative, above 255, NaN) is refused;
- transparency (``RGBA``, ``LA``, ``PA``, ``La``, ``RGBa``, or a palette/gray image with a
  transparent colour): composited on ``ALPHA_BACKGROUND`` (white), not dropped.

EXIF orientation is NOT applied: COCO's and VOC's masks are drawn on the stored pixel grid.
Any other mode, or a file that is missing, truncated or not an image, raises ``ImageError``
naming the path. Each conversion is logged once per folder (a dataset's images share one).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

ALPHA_BACKGROUND = (255, 255, 255)
EIGHT_BIT_MODES = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")

log = logging.getLogger(__name__)
_announced: set[tuple[str, str]] = set()


class ImageError(ValueError):
    """An image file that cannot be read as RGB. ``check`` says why: ``image_missing``,
    ``image_unreadable`` (truncated, corrupt or not an image) or ``image_mode`` (a mode, or a
    value range, that has no documented conversion)."""

    def __init__(self, path, check: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path, self.check = str(path), check


def conversion_of(image: Image.Image) -> str | None:
    """How ``to_rgb`` converts ``image``'s mode, in words (None for RGB itself)."""
    mode = image.mode
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        return f"{mode}: rescaled from 16 bit to 8 bit (value / 257)"
    if mode == "F":
        return "F: float values rescaled to 8 bit (0..1 x 255, or 0..255 as they are)"
    if mode in ALPHA_MODES or "transparency" in image.info:
        return f"{mode}: alpha composited on {ALPHA_BACKGROUND}"
    if mode == "RGB":
        return None
    return f"{mode}: converted to RGB by Pillow"


def _eight_bit(values: np.ndarray, mode: str, source: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0:
        raise ImageError(source, "image_mode", f"mode {mode} holds values {lo:g}..{hi:g}")
    if mode == "F":
        if hi > 255:
            raise ImageError(
                source, "image_mode", f"mode F holds values up to {hi:g} (known: 0..1 or 0..255)"
            )
        scale = 255.0 if hi <= 1 else 1.0
    else:
        if hi > 65535:
            raise ImageError(
                source, "image_mode", f"mode {mode} holds values up to {hi:g} (known: 0..65535)"
            )
        scale = 1 / 257
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image, source: str = "<in-memory image>") -> Image.Image:
    """``image`` as 8-bit RGB, converted as the module docstring says; RGB is returned as it is."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return Image.fromarray(_eight_bit(np.asarray(image), mode, source)).convert("RGB")
    if mode in ALPHA_MODES or (mode in EIGHT_BIT_MODES and "transparency" in image.info):
        rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in EIGHT_BIT_MODES:
        return image.convert("RGB")
    raise ImageError(source, "image_mode", f"image mode {mode} has no known conversion to RGB")


def _announce(image: Image.Image, source: str) -> None:
    what = conversion_of(image)
    key = (str(Path(source).parent), image.mode)
    if what and key not in _announced:
        _announced.add(key)
        log.info("images in %s of mode %s (first: %s)", key[0], what, source)


def open_image(image) -> Image.Image:
    """``image`` (a path, or a PIL image) as a fully decoded 8-bit RGB PIL image."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    return decode_image(image)[0]


def decode_image(path) -> tuple[Image.Image, str | None]:
    """The image file at ``path``, fully decoded, as 8-bit RGB, and how its mode was converted
    (``conversion_of``; None for RGB files)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "image_missing", "image file not found")
    try:
        with Image.open(path) as im:
            im.load()  # the whole file is decoded here: a truncated file fails now, by name
            _announce(im, str(path))
            rgb = to_rgb(im, str(path))
            return (rgb.copy() if rgb is im else rgb), conversion_of(im)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(path, "image_unreadable", f"cannot decode image ({e})") from e


def image_size(image) -> tuple[int, int]:
    """(width, height) of a PIL image or an image file, read from its header."""
    if isinstance(image, Image.Image):
        return image.size
    try:
        with Image.open(image) as im:
            return im.size
    except FileNotFoundError as e:
        raise ImageError(image, "image_missing", "image file not found") from e
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(image, "image_unreadable", f"cannot read image header ({e})") from e


def open_label_map(path) -> np.ndarray:
    """A label image (a palette or gray PNG of class or instance indices) as its index array,
    never converted to RGB: VOC's SegmentationObject / SegmentationClass files."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I", "I;16"):
                raise ImageError(path, "image_mode", f"a label map has mode {im.mode}")
            return np.array(im)
    except FileNotFoundError as e:
        raise ImageError(path, "image_missing", "label map not found") from e
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(path, "image_unreadable", f"cannot decode label map ({e})") from e
