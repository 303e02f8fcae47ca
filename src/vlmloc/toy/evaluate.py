"""Held-out evaluation of a model on fresh shapes images, through the workflow's own pieces:
generator -> filters -> exact object removal -> screening (runner + parsers)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..data.filtering import FilterSettings, filter_samples
from ..data.shapes import ShapesSpec, generate, removed_image_name
from ..defaults import defaults
from ..experiments.screening import run_screening
from ..runner import Runner
from ..tables.screening import hallucination_filter
from ..tasks import iou, task_prompt
from .data import pool_scene


def held_out_set(
    out_dir: str | Path, spec: ShapesSpec, n_images: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(samples, removed) for ``n_images`` new images, filtered like the workflow's data."""
    out = Path(out_dir)
    coco = generate(out, n_images=n_images, seed=seed, spec=spec)
    samples, _ = filter_samples(coco, out / "images", FilterSettings())
    removed = pd.DataFrame(
        {
            "sample_id": samples["sample_id"],
            "removed_path": [
                str(out / "removed" / removed_image_name(i, a))
                for i, a in zip(samples["image_id"], samples["ann_id"], strict=True)
            ],
        }
    )
    return samples, removed


MAX_NEW_TOKENS = defaults("screening.max_new_tokens")  # the screening's, as the workflow runs it


def summarize(answers: pd.DataFrame) -> dict[str, float]:
    """The quality figures of the toy models (fractions in 0..1)."""
    o, r = answers[answers["condition"] == "original"], answers[answers["condition"] == "removed"]
    loc, rloc = o[o["task"] == "localization"], r[r["task"] == "localization"]
    kept = hallucination_filter(answers, "binary")
    return {
        "loc_score": float(loc["loc_score"].mean()),
        "success@0.5": float(loc["success@0.5"].mean()),
        "success@0.7": float(loc["success@0.7"].mean()),
        "success@0.9": float(loc["success@0.9"].mean()),
        "cls_list": float(o.loc[o["task"] == "list", "identified"].mean()),
        "binary_yes_original": float(o.loc[o["task"] == "binary", "identified"].mean()),
        "removed_named_list": float(r.loc[r["task"] == "list", "identified"].mean()),
        "removed_yes_binary": float(
            r.loc[r["task"] == "binary", "identified"].mean()
        ),  # over parsed replies
        "unparsed_binary": float(
            answers.loc[answers["task"] == "binary", "identified"].isna().mean()
        ),
        "removed_loc_success@0.5": float(rloc["success@0.5"].mean()) if len(rloc) else np.nan,
        "filter_kept": float(kept["kept"].mean()),
        "unparsed_boxes": float((loc["status"] != "ok").mean()),
        "truncated": float(answers["truncated"].mean()),
        "n_samples": float(len(loc)),
    }


def evaluate(
    adapter, samples, removed, categories, batch_size: int = 32, conditions=("original", "removed")
) -> pd.DataFrame:
    runner = Runner(adapter, batch_size=batch_size, progress=False)
    return run_screening(
        runner, samples, removed, categories, MAX_NEW_TOKENS, conditions=conditions
    )


SIZE_BINS = (
    0.0,
    0.075,
    0.15,
    0.3,
    1.0,
)  # object side (sqrt of box area) over the image's longer side


def localization_errors(answers: pd.DataFrame, samples: pd.DataFrame, coco: dict) -> pd.DataFrame:
    """Why localization answers miss, one row per localization answer on the original images.

    ``kind``: ``right_object`` (the predicted box overlaps the asked object most), ``other_object``
    (it overlaps another object of the image most: a binding error), ``nowhere`` (it overlaps no
    object), ``unparsed``. ``coord_error``: mean |predicted - true| of the four coordinates over
    the image's longer side. ``rel_side``: the object's size on the same scale.
    """
    loc = answers[(answers["task"] == "localization") & (answers["condition"] == "original")]
    loc = loc.merge(
        samples[
            [
                "sample_id",
                "image_id",
                "ann_id",
                "width",
                "height",
                "bbox_x",
                "bbox_y",
                "bbox_w",
                "bbox_h",
            ]
        ],
        on="sample_id",
    )
    objects: dict[int, list[tuple[int, tuple[float, ...]]]] = {}  # image -> (annotation id, box)
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        objects.setdefault(a["image_id"], []).append((a["id"], (x, y, x + w, y + h)))
    kinds = []
    for row in loc.itertuples():
        if row.status != "ok" or np.isnan(row.pred_x1):
            kinds.append("unparsed")
            continue
        pred = (row.pred_x1, row.pred_y1, row.pred_x2, row.pred_y2)
        overlap, ann = max((iou(pred, box), ann) for ann, box in objects[row.image_id])
        kinds.append(
            "nowhere" if overlap == 0 else "right_object" if ann == row.ann_id else "other_object"
        )
    longer = np.maximum(loc["width"], loc["height"]).to_numpy(float)
    true = loc[["bbox_x", "bbox_y"]].to_numpy(float)
    true = np.concatenate([true, true + loc[["bbox_w", "bbox_h"]].to_numpy(float)], 1)
    pred = loc[["pred_x1", "pred_y1", "pred_x2", "pred_y2"]].to_numpy(float)
    return pd.DataFrame(
        {
            "sample_id": loc["sample_id"].to_numpy(),
            "kind": kinds,
            "rel_side": np.sqrt(loc["bbox_w"] * loc["bbox_h"]).to_numpy(float) / longer,
            "coord_error": np.abs(pred - true).mean(1) / longer,
            "success@0.5": loc["success@0.5"].to_numpy(float),
        }
    )


def localization_breakdown(errors: pd.DataFrame) -> dict[str, float]:
    """Shares of each kind of answer, the right-object answers' median coordinate error, and
    success at IoU 0.5 per object size (fractions in 0..1)."""
    out = {
        f"share_{k}": float((errors["kind"] == k).mean())
        for k in ("right_object", "other_object", "nowhere", "unparsed")
    }
    right = errors[errors["kind"] == "right_object"]
    out["right_object_median_error"] = (
        float(right["coord_error"].median()) if len(right) else np.nan
    )
    out["right_object_success@0.5"] = float(right["success@0.5"].mean()) if len(right) else np.nan
    bins = pd.cut(errors["rel_side"], SIZE_BINS)
    for interval, group in errors.groupby(bins, observed=True):
        out[f"success@0.5_side_{interval.left:g}-{interval.right:g}"] = float(
            group["success@0.5"].mean()
        )
        out[f"n_side_{interval.left:g}-{interval.right:g}"] = float(len(group))
    return out


def unique_object_queries(
    spec: ShapesSpec, seed: int, indices
) -> tuple[list[Image.Image], list[str], list[tuple]]:
    """Localization queries about every uniquely-present object of the pool scenes ``indices``
    (unfiltered, as training asks them): images, prompts, (true box, width, height)."""
    images, prompts, truth = [], [], []
    for i in indices:
        image, _, objects = pool_scene(spec, seed, i)
        counts = Counter(o["category"] for o in objects)
        for o in objects:
            if counts[o["category"]] == 1:
                ys, xs = np.nonzero(o["mask"])
                images.append(Image.fromarray(image))
                prompts.append(task_prompt("localization", o["category"], spec.categories))
                truth.append(
                    (
                        (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
                        image.shape[1],
                        image.shape[0],
                    )
                )
    return images, prompts, truth


def fit_gap(
    adapter, spec: ShapesSpec, seed: int, pool_size: int, n: int, batch_size: int = 32
) -> dict[str, float]:
    """Success at IoU 0.5 on ``n`` scenes of the model's own training pool against ``n`` scenes
    of the same generator past the pool. Equal figures: the model underfits (more training or
    capacity helps); a gap: it memorised its training images (more images help)."""
    runner = Runner(adapter, batch_size=batch_size, progress=False)
    out = {}
    for name, start in (("train", 0), ("unseen", pool_size)):
        images, prompts, truth = unique_object_queries(spec, seed, range(start, start + n))
        texts = runner.generate(images, prompts, MAX_NEW_TOKENS["localization"])
        boxes = [adapter.parse_box(t, w, h).box for t, (_, w, h) in zip(texts, truth, strict=True)]
        scores = [
            0.0 if b is None else iou(b, box) for b, (box, _, _) in zip(boxes, truth, strict=True)
        ]
        out[f"fit_{name}_success@0.5"] = float(np.mean(np.array(scores) >= 0.5))
        out[f"fit_{name}_queries"] = float(len(scores))
    return out
