"""The synthetic shapes dataset: the embedded default that runs anywhere without downloads.

Each image is a smooth textured background with 1..N non-overlapping coloured shapes; a
category is "<colour> <shape>" (e.g. "red circle"). Because the generator knows the background,
every object's object-removed image is exact (no inpainting model needed). Images vary in size and
aspect ratio so LLaVA's pad-to-square and InternVL's tiling are exercised, and objects span the
COCO size buckets. Everything is a pure function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .coco import encode_mask, rle_area_bbox, write_json

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
}
SHAPES = ("circle", "square", "triangle", "ring", "diamond")


@dataclass(frozen=True)
class ShapesSpec:
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    shapes: tuple[str, ...] = ("circle", "square", "triangle")
    min_objects: int = 1
    max_objects: int = 4
    long_side: tuple[int, int] = (200, 400)
    aspect: tuple[float, float] = (0.55, 1.0)  # short/long side
    duplicate_probability: float = 0.15  # chance an object repeats an earlier category
    categories: list[str] = field(init=False)

    def __post_init__(self):
        for c in self.colours:
            if c not in COLOURS:
                raise ValueError(f"unknown colour {c!r}; known: {sorted(COLOURS)}")
        for s in self.shapes:
            if s not in SHAPES:
                raise ValueError(f"unknown shape {s!r}; known: {SHAPES}")
        object.__setattr__(
            self, "categories", [f"{c} {s}" for c in self.colours for s in self.shapes]
        )


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A muted two-colour gradient with low-frequency blotches and fine grain."""
    c0, c1 = rng.uniform(60, 200, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h + 1) / 2
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    coarse = rng.normal(0, 12, size=(max(2, h // 48), max(2, w // 48), 1)).astype(np.float32)
    blotch = np.array(Image.fromarray(coarse[..., 0]).resize((w, h), Image.BICUBIC))[..., None]
    img = img + blotch + rng.normal(0, 3, size=(h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_mask(shape: str, h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    m = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(m)
    if shape == "circle":
        d.ellipse([x0, y0, x1 - 1, y1 - 1], fill=1)
    elif shape == "square":
        d.rectangle([x0, y0, x1 - 1, y1 - 1], fill=1)
    elif shape == "triangle":
        d.polygon([((x0 + x1) / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=1)
    elif shape == "diamond":
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        d.polygon([(cx, y0), (x1 - 1, cy), (cx, y1 - 1), (x0, cy)], fill=1)
    elif shape == "ring":
        d.ellipse([x0, y0, x1 - 1, y1 - 1], fill=1)
        t = max(2, (x1 - x0) // 4)
        d.ellipse([x0 + t, y0 + t, x1 - 1 - t, y1 - 1 - t], fill=0)
    return np.array(m, dtype=bool)


def _object_side(rng: np.random.Generator, short: int) -> int:
    """Pick a size bucket uniformly, then a side length inside it (bbox area = side^2)."""
    limit = int(short * 0.7)
    bucket = rng.integers(3)
    lo, hi = [(14, 31), (34, 95), (100, max(101, limit))][bucket]
    hi = min(hi, limit)
    lo = min(lo, hi)
    return int(rng.integers(lo, hi + 1))


def render_scene(rng: np.random.Generator, spec: ShapesSpec, size: tuple[int, int] | None = None):
    """Return (image, background, objects); objects are dicts with category, shape, colour, mask.

    ``size`` = (width, height) fixes the canvas (training uses small fixed sizes); otherwise it is
    drawn from the spec. Objects never overlap, so removing one restores the exact background.
    """
    if size is None:
        long = int(rng.integers(spec.long_side[0], spec.long_side[1] + 1))
        short = int(round(long * rng.uniform(*spec.aspect)))
        w, h = (long, short) if rng.random() < 0.5 else (short, long)
    else:
        w, h = size
    background = _background(rng, h, w)
    image = background.copy()
    taken = np.zeros((h, w), dtype=bool)
    objects: list[dict] = []
    n = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    for _ in range(n):
        if objects and rng.random() < spec.duplicate_probability:
            colour, shape = objects[int(rng.integers(len(objects)))]["category"].split(" ")
        else:
            colour = spec.colours[int(rng.integers(len(spec.colours)))]
            shape = spec.shapes[int(rng.integers(len(spec.shapes)))]
        for _try in range(50):
            side = _object_side(rng, min(w, h))
            bw = int(np.clip(side * rng.uniform(0.8, 1.25), 8, w - 2))
            bh = int(np.clip(side * side / bw, 8, h - 2))
            x0, y0 = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
            box = (x0, y0, x0 + bw, y0 + bh)
            if not taken[max(0, y0 - 4) : y0 + bh + 4, max(0, x0 - 4) : x0 + bw + 4].any():
                break
        else:
            continue
        mask = _shape_mask(shape, h, w, box)
        if mask.sum() < 16:
            continue
        taken[box[1] : box[3], box[0] : box[2]] = True
        base = np.array(COLOURS[colour], dtype=np.float32) + rng.uniform(-15, 15, size=3)
        shade = rng.normal(0, 4, size=(h, w, 1))
        image[mask] = np.clip(base[None] + shade[mask], 0, 255).astype(np.uint8)
        objects.append(
            {"category": f"{colour} {shape}", "colour": colour, "shape": shape, "mask": mask}
        )
    return image, background, objects


def generate(out_dir: str | Path, n_images: int, seed: int, spec: ShapesSpec) -> dict:
    """Write images/, removed/ (one exact object-removed image per object) and annotations.json."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "removed").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cat_ids = {name: i + 1 for i, name in enumerate(spec.categories)}
    images, anns = [], []
    for image_id in range(1, n_images + 1):
        image, background, objects = render_scene(rng, spec)
        h, w = image.shape[:2]
        stem = f"{image_id:06d}"
        Image.fromarray(image).save(
            out / "images" / f"{stem}.png", compress_level=1
        )  # lossless; level 6 took 80% of the time
        images.append({"id": image_id, "file_name": f"{stem}.png", "width": w, "height": h})
        for k, obj in enumerate(objects):
            ann_id = image_id * 10 + k
            removed = image.copy()
            removed[obj["mask"]] = background[obj["mask"]]
            Image.fromarray(removed).save(
                out / "removed" / f"{stem}_{ann_id}.png", compress_level=1
            )
            rle = encode_mask(obj["mask"])
            area, bbox = rle_area_bbox(rle)
            anns.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat_ids[obj["category"]],
                    "segmentation": rle,
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": 0,
                }
            )
    coco = {
        "info": {"dataset": "vlmloc synthetic shapes", "seed": seed},
        "images": images,
        "annotations": anns,
        "categories": [{"id": i, "name": n} for n, i in cat_ids.items()],
    }
    write_json(coco, out / "annotations.json")
    return coco


def removed_image_name(image_id: int, ann_id: int) -> str:
    return f"{image_id:06d}_{ann_id}.png"
