"""Paper sec. 3.1 (visual information ablation, Table 1 / 4 / 5): chosen visual tokens are
replaced by the model's mean visual embedding at the LLM input, and both tasks are asked again.

Strategies (one condition each, over the probing subset):
- object tokens: the object mask on each view's grid (any pixel), padded by -2..+2 token layers
  (InternVL: every view, global and local);
- integrated gradients: the top k% of image tokens by attribution magnitude, per task (the
  localization ranking for the box, the classification ranking for the list);
- random: k% of the tokens drawn uniformly, per seed;
- register tokens: embedding norm above mean + 2 std (per image, or over the mean's image set).
``token_ablation_matched`` (Table 5) ablates the object, and as many IG-ranked or random tokens
as the object has, in each sample.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from ..attribution import attribute_samples
from ..data.filtering import sample_mask
from ..geometry import object_token_indices
from ..interventions import ReplaceVisualTokens, random_token_indices
from ..plans import ig_steps  # the count (vlmloc.workload) reads the same steps
from ..scoring import score_rows
from .base import (
    Condition,
    Experiment,
    ShardJob,
    register,
    run_conditions,
    sample_rng,
    share_count,
)


def object_indices(
    adapter, samples: pd.DataFrame, padding: int = 0, views: tuple[str, ...] | None = None
) -> list[np.ndarray]:
    """Per sample, the image tokens its object mask covers (any pixel), grown/shrunk by ``padding``."""
    return [
        object_token_indices(
            adapter.layout(int(r["width"]), int(r["height"])), sample_mask(r), padding, views
        )
        for r in samples.to_dict("records")
    ]


def random_indices_like(
    adapter, samples: pd.DataFrame, counts: Sequence[int], seed: int
) -> list[np.ndarray]:
    """Per sample, as many uniformly drawn image tokens as ``counts`` says (the random control).
    Each sample's draw depends on (seed, sample id, count) only, not on its shard."""
    return [
        random_token_indices(
            adapter.layout(int(r["width"]), int(r["height"])).n_tokens,
            int(k),
            sample_rng(seed, r["sample_id"], int(k)),
        )
        for r, k in zip(samples.to_dict("records"), counts, strict=True)
    ]


def top_indices(importance: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` tokens of highest importance (ties: the earlier token first)."""
    order = np.argsort(-np.asarray(importance), kind="stable")
    return np.sort(order[:n])


@torch.inference_mode()
def register_indices(
    adapter,
    pixels: Sequence[torch.Tensor],
    n_std: float = 2.0,
    scope: str = "image",
    stats: dict | None = None,
) -> list[np.ndarray]:
    """Per image (its preprocessed views), the visual tokens whose embedding norm (at the LLM
    input) exceeds mean + n_std std: of that image's own tokens (scope "image") or of the mean
    embedding's image set (scope "dataset", from ``stats``: norm_mean, norm_std)."""
    out = []
    for px in pixels:
        feats = adapter.image_features(px.to(adapter.device, adapter.model.dtype))
        norms = feats.float().norm(dim=-1).double().cpu().numpy()
        if scope == "image":
            mu, sd = norms.mean(), norms.std(ddof=1)
        elif scope == "dataset":
            mu, sd = stats["norm_mean"], stats["norm_std"]
        else:
            raise ValueError(f"register scope must be 'image' or 'dataset', not {scope!r}")
        out.append(np.flatnonzero(norms > mu + n_std * sd))
    return out


def ablation(name: str, params: dict, indices: list[np.ndarray], job: ShardJob, **kw) -> Condition:
    return Condition(name, params, ReplaceVisualTokens(indices, job.mean), edited=indices, **kw)


def importance_columns(attributions, gaps: list[dict]) -> list[dict]:
    """The raw columns of the first IG condition of a task: its gap, and ``ig_importance``, every
    visual token's importance (sequence order, float32), once per sample and task; the token-grid
    figures read it (``vlmloc.experiments.token_grid``), so they never rerun a model."""
    return [
        {**g, "ig_importance": np.asarray(a.importance, dtype=np.float32)}
        for a, g in zip(attributions, gaps, strict=True)
    ]


def _ig_rankings(job: ShardJob, task: str, ig: dict):
    """Every sample's IG attribution for ``task``, with ``ig`` the experiment's completed
    ``integrated_gradients`` settings."""
    pixels = [job.runner.pixels(r["image_path"]) for r in job.records]
    return attribute_samples(
        job.adapter,
        pixels,
        job.records,
        task,
        job.categories,
        job.present or [[]] * len(pixels),
        job.mean,
        progress=job.progress,
        steps=ig_steps(ig, task),
        target=ig["target"],
        importance=ig["importance"],
        method=ig["method"],
        internal_batch_size=ig["internal_batch_size"],
    )


@register
class TokenAblation(Experiment):
    """Table 1 (and Table 4: its random rows with the std over seeds)."""

    name = "token_ablation"
    param_columns = ("strategy", "padding", "k", "seed")

    def conditions(self, job: ShardJob) -> Iterator[Condition]:
        s, samples = self.settings(job), job.samples
        n_tokens = [lay.n_tokens for lay in job.layouts()]
        yield Condition("baseline", {"strategy": "baseline"})
        for p in s["paddings"]:
            yield ablation(
                f"object{p:+d}",
                {"strategy": "object", "padding": p},
                object_indices(job.adapter, samples, p),
                job,
            )
        reg = s["register"]
        pixels = [
            job.runner.pixels(p) for p in samples["image_path"]
        ]  # preprocessed once, shared with generation
        idx = register_indices(job.adapter, pixels, reg["n_std"], reg["scope"], job.embedding_stats)
        yield ablation("register", {"strategy": "register"}, idx, job)
        rnd = s["random"]
        for k in rnd["k"]:
            for seed in rnd["seeds"]:
                idx = random_indices_like(
                    job.adapter, samples, [share_count(n, k) for n in n_tokens], seed
                )
                yield ablation(
                    f"random_k{k:g}_s{seed}", {"strategy": "random", "k": k, "seed": seed}, idx, job
                )
        for task in self.tasks:
            attributions = _ig_rankings(job, task, s["integrated_gradients"])
            gaps = [{"ig_gap": a.relative_gap} for a in attributions]
            for i, k in enumerate(s["integrated_gradients"]["k"]):
                idx = [
                    top_indices(a.importance, share_count(n, k))
                    for a, n in zip(attributions, n_tokens, strict=True)
                ]
                yield ablation(
                    f"ig_{task}_k{k:g}",
                    {"strategy": "ig", "k": k},
                    idx,
                    job,
                    tasks=(task,),
                    extra=gaps if i else importance_columns(attributions, gaps),
                )


@register
class TokenAblationMatched(Experiment):
    """Table 5: object tokens, and as many IG-ranked or random tokens as the object has."""

    name = "token_ablation_matched"
    param_columns = ("strategy", "seed")

    def conditions(self, job: ShardJob) -> Iterator[Condition]:
        s, samples = self.settings(job), job.samples
        obj = object_indices(job.adapter, samples, 0)
        counts = [len(i) for i in obj]
        yield Condition("baseline", {"strategy": "baseline"})
        yield ablation("object", {"strategy": "object"}, obj, job)
        for seed in s["random"]["seeds"]:
            yield ablation(
                f"random_s{seed}",
                {"strategy": "random", "seed": seed},
                random_indices_like(job.adapter, samples, counts, seed),
                job,
            )
        for task in self.tasks:
            attributions = _ig_rankings(job, task, s["integrated_gradients"])
            idx = [top_indices(a.importance, n) for a, n in zip(attributions, counts, strict=True)]
            yield ablation(
                f"ig_{task}",
                {"strategy": "ig"},
                idx,
                job,
                tasks=(task,),
                extra=[{"ig_gap": a.relative_gap} for a in attributions],
            )


def run_ablated(
    runner,
    samples: pd.DataFrame,
    categories: Sequence[str],
    indices: Sequence[np.ndarray] | None,
    value: torch.Tensor,
    max_new_tokens: dict[str, int],
    tasks: Sequence[str] = ("localization", "list"),
) -> pd.DataFrame:
    """Scored rows of one ablation (``indices=None``: the baseline) on the experiment layer; for
    scripts and tests that need a single condition outside the workflow."""
    job = ShardJob(
        runner.adapter,
        runner,
        samples,
        list(categories),
        {},
        dict(max_new_tokens),
        value,
        progress=False,
    )
    cond = (
        Condition("baseline", {}, tasks=tuple(tasks))
        if indices is None
        else ablation("ablated", {}, list(indices), job, tasks=tuple(tasks))
    )
    raw = run_conditions("ad hoc", [cond], job)
    return score_rows(raw, samples, runner.adapter.family, categories)
