"""Paper sec. 2.2: baseline answers, the per-model hallucination filter and the probing subset.

For every sample, both tasks (and the binary query) are asked on the original image and on its
object-removed copy. A sample passes a model's hallucination filter if the model identifies the
object on the original but not on the object-removed image; a reply that cannot be read is
unknown, never "not identified", and excludes its sample. The probing subset is the intersection
over the configured models.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..runner import Runner
from ..scoring import score_rows
from ..tasks import IOU_THRESHOLDS
from .base import IMAGES, Condition, Experiment, ShardJob, register, run_shard

ANSWER_COLUMNS = [
    "sample_id",
    "condition",
    "task",
    "prompt",
    "answer",
    "truncated",
    "status",
    "n_boxes",
    "pred_x1",
    "pred_y1",
    "pred_x2",
    "pred_y2",
    "iou",
    *[f"success@{t}" for t in IOU_THRESHOLDS],
    "loc_score",
    "identified",
]


@register
class Screening(Experiment):
    """Both tasks and the binary query, on the original and on the object-removed image."""

    name = "screening"
    tasks = ("localization", "list", "binary")

    def conditions(self, job: ShardJob):
        for image in job.settings.get("conditions", IMAGES):
            yield Condition(
                image, {}, image=image, tasks=tuple(job.settings.get("tasks", self.tasks))
            )


def run_screening(
    runner: Runner,
    samples: pd.DataFrame,
    removed: pd.DataFrame,
    categories: Sequence[str],
    max_new_tokens: dict[str, int],
    tasks: Sequence[str] = ("localization", "list", "binary"),
    conditions: Sequence[str] = ("original", "removed"),
) -> pd.DataFrame:
    """One scored row per (sample, condition, task): the screening experiment on the experiment
    layer, raw answers scored at once (the workflow scores in a separate CPU step)."""
    if samples.empty:
        return pd.DataFrame(columns=ANSWER_COLUMNS)
    df = samples.merge(removed, on="sample_id", how="left")
    settings = {"conditions": list(conditions), "tasks": list(tasks)}
    job = ShardJob(
        runner.adapter, runner, df, list(categories), settings, dict(max_new_tokens), progress=False
    )
    raw = run_shard(Screening(), job)
    return score_rows(raw, samples, runner.adapter.family, categories)
