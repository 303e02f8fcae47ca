"""Image sets that are not the probing samples: the mean visual embedding's images and the
probes' training images (a folder of image files, or generated shapes scenes)."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPEG", ".JPG", ".PNG")


def generated_images(n: int, seed: int, shapes_spec: dict | None = None) -> list:
    """``n`` shapes scenes (PIL images, in memory) from ``seed``, drawn as ``shapes_spec`` says
    (a shapes dataset's config keys)."""
    import numpy as np
    from PIL import Image

    from .shapes import ShapesSpec, render_scene

    spec = ShapesSpec(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in (shapes_spec or {}).items()}
    )
    rng = np.random.default_rng(seed)
    return [Image.fromarray(render_scene(rng, spec)[0]) for _ in range(n)]


def image_files(folder: str | Path, key: str, what: str = "the paper uses ImageNet") -> list[str]:
    """Every image file under ``folder``, recursively, sorted; a missing or empty folder fails
    naming the config ``key``."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{key}: {root} is not a folder of images ({what})")
    files = sorted(str(f) for f in root.rglob("*") if f.suffix in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{key}: no images under {root}")
    return files


def images_in_image_set(image_set: dict, shapes_spec: dict | None = None) -> list:
    """The images of the mean visual embedding: a folder (every image in it, recursively, sorted,
    the first ``n_images`` if set), or ``generated`` shapes scenes (in memory, own seed, so never
    the probing samples)."""
    n = image_set.get("n_images")
    if image_set["images"] == "generated":
        return generated_images(n or 64, image_set["seed"], shapes_spec)
    files = image_files(
        image_set["images"], "mean_embedding.images", "the paper uses the ImageNet validation set"
    )
    return files[:n] if n else files
