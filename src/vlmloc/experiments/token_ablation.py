"""Paper sec. 3.1 (visual information ablation): answers with chosen visual tokens replaced by
the model's mean visual embedding at the LLM input.

This module holds the building blocks (token selections and the ablated run); the Table 1
experiment composes them over strategies, paddings and seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..data.filtering import sample_mask
from ..geometry import object_token_indices
from ..interventions import ReplaceVisualTokens, random_token_indices
from ..runner import Runner
from ..tasks import task_prompt
from .screening import score_answer


def object_indices(adapter, samples: pd.DataFrame, padding: int = 0, views: tuple[str, ...] | None = None) -> list[np.ndarray]:
    """Per sample, the image tokens its object mask covers (any pixel), grown/shrunk by ``padding``."""
    return [
        object_token_indices(adapter.layout(int(r["width"]), int(r["height"])), sample_mask(r), padding, views)
        for r in samples.to_dict("records")
    ]


def random_indices_like(adapter, samples: pd.DataFrame, counts: Sequence[int], seed: int) -> list[np.ndarray]:
    """Per sample, as many uniformly drawn image tokens as ``counts`` says (the random control)."""
    rng = np.random.default_rng(seed)
    return [
        random_token_indices(adapter.layout(int(r["width"]), int(r["height"])).n_tokens, int(k), rng)
        for r, k in zip(samples.to_dict("records"), counts, strict=True)
    ]


def run_ablated(
    runner: Runner,
    samples: pd.DataFrame,
    categories: Sequence[str],
    indices: Sequence[np.ndarray] | None,
    value,
    max_new_tokens: dict[str, int],
    tasks: Sequence[str] = ("localization", "list"),
) -> pd.DataFrame:
    """One row per (sample, task) with the raw answer and its scores; ``indices=None`` = baseline."""
    records = samples.to_dict("records")
    images = [r["image_path"] for r in records]
    intervention = None if indices is None else ReplaceVisualTokens(list(indices), value)
    rows = []
    prompts = [[task_prompt(task, r["category"], categories) for r in records] for task in tasks]
    answers = runner.generate_shared(images, prompts, [max_new_tokens[t] for t in tasks], intervention=intervention, desc="ablated")
    for task, task_prompts, task_answers in zip(tasks, prompts, answers, strict=True):
        for r, p, a, idx in zip(records, task_prompts, task_answers, indices if indices is not None else [()] * len(records), strict=True):
            rows.append({"sample_id": r["sample_id"], "task": task, "n_ablated": len(idx), "prompt": p, "answer": a,
                         **score_answer(runner.adapter, task, a, r, categories)})  # fmt: skip
    return pd.DataFrame(rows)
