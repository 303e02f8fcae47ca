"""Glue for rule scripts: logging into the rule's log file, device resolution, atomic writes."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import pandas as pd


def resolve_device(setting: str = "auto") -> str:
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def logged(smk):
    """Send logging and stderr (tqdm bars, tracebacks) of a rule script to its ``log:`` file."""
    path = Path(smk.log[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as f:
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        old_err = sys.stderr
        sys.stderr = f
        try:
            yield logging.getLogger(f"vlmloc.rule.{smk.rule}")
        except BaseException:
            logging.getLogger("vlmloc").exception("rule %s failed", smk.rule)
            raise
        finally:
            sys.stderr = old_err
            root.removeHandler(handler)


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Atomic: a killed job never leaves a table that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)


def write_tsv(df: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, sep="\t", index=False)
    tmp.replace(path)


def read_samples(samples: str | Path, subset_ids: str | Path | None = None) -> pd.DataFrame:
    """The dataset's samples, or those named in a subset's ids file (one sample id a line)."""
    df = pd.read_parquet(samples)
    if subset_ids:
        ids = Path(subset_ids).read_text().split()
        df = df[df["sample_id"].isin(set(ids))].reset_index(drop=True)
        if len(df) != len(set(ids)):
            raise ValueError(
                f"{subset_ids}: {len(set(ids)) - len(df)} sample ids are not in {samples}"
            )
    return df


def save_torch(obj, path: str | Path) -> None:
    """Atomic ``torch.save``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def categories_of(coco: dict, samples: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The dataset's category names in id order (the list prompt's order), and per sample the
    categories present in its image, in the same order (the gold list answer)."""
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    names = {c["id"]: c["name"] for c in cats}
    by_image: dict[int, set[int]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], set()).add(a["category_id"])
    present = [
        [names[c] for c in sorted(by_image.get(int(i), ()))] for i in samples.get("image_id", [])
    ]
    return [c["name"] for c in cats], present


def other_objects(coco: dict, samples: pd.DataFrame) -> list[list[dict]] | None:
    """Per sample, the segmentation (RLE) of every OTHER annotation of its image (crowd ones too);
    None when the samples do not name their annotation (``ann_id``)."""
    if "ann_id" not in samples or "image_id" not in samples:
        return None
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(int(a["image_id"]), []).append(a)
    return [
        [a["segmentation"] for a in by_image.get(int(i), []) if int(a["id"]) != int(ann)]
        for i, ann in zip(samples["image_id"], samples["ann_id"], strict=True)
    ]


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPEG", ".JPG", ".PNG")


def generated_images(n: int, seed: int, shapes_spec: dict | None = None) -> list:
    """``n`` shapes scenes (PIL images, in memory) from ``seed``, drawn as ``shapes_spec`` says
    (a shapes dataset's config keys)."""
    import numpy as np
    from PIL import Image

    from ..data.shapes import ShapesSpec, render_scene

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
