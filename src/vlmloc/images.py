"""Opening an image given as a path or as a PIL image: the one place that does it, below every
layer that reads images (the runner, the interventions' mean embedding, the probes)."""

from __future__ import annotations

from PIL import Image


def open_image(image) -> Image.Image:
    """``image`` as an RGB PIL image: a PIL image is returned as it is, a path is opened."""
    return image if isinstance(image, Image.Image) else Image.open(image).convert("RGB")
