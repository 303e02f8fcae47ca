"""Held-out evaluation of a model on fresh shapes images, through the workflow's own pieces:
generator -> filters -> exact object removal -> screening (runner + parsers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.filtering import FilterSettings, filter_samples
from ..data.shapes import ShapesSpec, generate, removed_image_name
from ..experiments.screening import hallucination_filter, run_screening
from ..runner import Runner


def held_out_set(out_dir: str | Path, spec: ShapesSpec, n_images: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(samples, removed) for ``n_images`` new images, filtered like the workflow's data."""
    out = Path(out_dir)
    coco = generate(out, n_images=n_images, seed=seed, spec=spec)
    samples, _ = filter_samples(coco, out / "images", FilterSettings())
    removed = pd.DataFrame(
        {"sample_id": samples["sample_id"],
         "removed_path": [str(out / "removed" / removed_image_name(i, a)) for i, a in zip(samples["image_id"], samples["ann_id"], strict=True)]}
    )  # fmt: skip
    return samples, removed


MAX_NEW_TOKENS = {"localization": 40, "list": 48, "binary": 4}


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
        "removed_yes_binary": float(r.loc[r["task"] == "binary", "identified"].mean()),
        "removed_loc_success@0.5": float(rloc["success@0.5"].mean()) if len(rloc) else np.nan,
        "filter_kept": float(kept["kept"].mean()),
        "unparsed_boxes": float((loc["status"] != "ok").mean()),
        "n_samples": float(len(loc)),
    }


def evaluate(adapter, samples, removed, categories, batch_size: int = 32, conditions=("original", "removed")) -> pd.DataFrame:
    runner = Runner(adapter, batch_size=batch_size, progress=False)
    return run_screening(runner, samples, removed, categories, MAX_NEW_TOKENS, conditions=conditions)
