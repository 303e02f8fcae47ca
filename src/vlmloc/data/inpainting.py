"""Object removal: for every sample, a copy of its image with the target object inpainted.

Backends
- ``lama``: LaMa (Suvorov et al. 2022) through simple-lama-inpainting, as in the paper.
- ``opencv``: OpenCV's Telea inpainting; needs no weights, runs anywhere (a weak stand-in).
- ``exact``: the synthetic generator already wrote each object's exact removed image; copy it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from ..images import open_image
from .filtering import sample_mask

BACKENDS = ("lama", "opencv", "exact")


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def shard_of(samples: pd.DataFrame, shard: int, n_shards: int) -> pd.DataFrame:
    """Rows of shard ``shard`` (0-based) of ``n_shards``; samples are sorted by id, so stable."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} outside 0..{n_shards - 1}")
    return samples.sort_values("sample_id", kind="stable").iloc[shard::n_shards]


class OpenCVInpainter:
    def __init__(self, radius: int = 5):
        self.radius = radius

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        out = cv2.inpaint(bgr, mask.astype(np.uint8) * 255, self.radius, cv2.INPAINT_TELEA)
        return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def file_md5(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class LamaInpainter:
    """LaMa through simple-lama-inpainting, which reads env LAMA_MODEL (a local TorchScript file
    with big-lama.pt's call: image (1, 3, H, W) in 0..1 and mask (1, 1, H, W) of 0/1, both padded
    to a multiple of 8, in; the inpainted image out) before it would download. ``md5``: the
    weights' expected checksum (config inpainting.lama_md5), checked before loading."""

    def __init__(
        self, weights: str | None = None, device: str | None = None, md5: str | None = None
    ):
        if weights:
            if not Path(weights).is_file():
                raise FileNotFoundError(
                    f"LaMa weights not found at {weights} (config inpainting.lama_weights)"
                )
            if md5 and (found := file_md5(weights)) != md5:
                raise ValueError(
                    f"LaMa weights {weights}: md5 {found}, expected {md5} (config "
                    "inpainting.lama_md5; set it to null to accept other weights)"
                )
            os.environ["LAMA_MODEL"] = str(weights)
        import torch
        from simple_lama_inpainting import SimpleLama

        self.model = SimpleLama(
            device=torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        )

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = self.model(Image.fromarray(image), Image.fromarray(mask.astype(np.uint8) * 255))
        # LaMa pads to a multiple of 8 and returns the padded result: crop back to the input.
        return np.asarray(out)[: image.shape[0], : image.shape[1]]


def make_inpainter(backend: str, **kw):
    if backend == "opencv":
        return OpenCVInpainter(radius=kw.get("radius", 5))
    if backend == "lama":
        return LamaInpainter(
            weights=kw.get("lama_weights"), device=kw.get("device"), md5=kw.get("lama_md5")
        )
    raise ValueError(f"unknown inpainting backend {backend!r}; choose from {BACKENDS}")


def remove_objects(
    samples: pd.DataFrame,
    out_dir: str | Path,
    backend: str,
    dilate_px: int = 0,
    exact_dir: str | Path | None = None,
    **backend_kw,
) -> pd.DataFrame:
    """Write ``<out_dir>/<sample_id>.png`` per sample; return the index (sample_id, removed_path)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inpaint = None if backend == "exact" else make_inpainter(backend, **backend_kw)
    rows = []
    for row in tqdm(samples.to_dict("records"), desc=f"remove objects ({backend})", mininterval=5):
        dest = out / f"{row['sample_id']}.png"
        if backend == "exact":
            if exact_dir is None:
                raise ValueError("backend 'exact' needs the generator's removed/ folder")
            stem = Path(row["image_path"]).stem
            shutil.copyfile(Path(exact_dir) / f"{stem}_{row['ann_id']}.png", dest)
        else:
            image = np.asarray(open_image(row["image_path"]))
            mask = dilate(sample_mask(row), dilate_px)
            Image.fromarray(inpaint(image, mask)).save(dest)
        rows.append({"sample_id": row["sample_id"], "removed_path": str(dest)})
    return pd.DataFrame(rows, columns=["sample_id", "removed_path"])
