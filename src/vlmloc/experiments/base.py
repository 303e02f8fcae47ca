"""The experiment layer: every experiment of the paper is a set of conditions run by one job.

An experiment declares its conditions; ``run_shard`` runs one shard of the probing subset through
all of them with a model loaded once, and writes RAW rows (answers, never scores). Scoring is a
separate CPU step (``vlmloc.scoring.score_rows``), so a parser fix reruns no model job;
``check_complete`` is the gather step's guard against a missing or duplicated sample.

A ``Condition`` is: a unique name, tidy parameters (each becomes a column: strategy, padding, k,
seed, ...), which image the samples are asked about (original or object-removed), an intervention
that covers every sample of the shard (it is given the rows of each batch), the tasks it asks, and
per sample the image tokens it edits (for the share of tokens removed) and any extra raw columns.

To add an experiment: subclass ``Experiment`` in a module of this package, give it a ``name``
and ``conditions(job)``, decorate it with ``@register``, and import the module in
``experiments/__init__.py``. The workflow's ``run_experiment`` rule then runs it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from ..defaults import with_defaults
from ..interventions.base import Intervention
from ..models.base import Adapter
from ..runner import Runner
from ..scoring import EXCLUDED, EXPECTED
from ..tasks import task_prompt

IMAGES = ("original", "removed")


@dataclass
class Condition:
    name: str
    params: dict[str, Any]
    intervention: Intervention | None = None
    image: str = "original"
    tasks: tuple[str, ...] = ("localization", "list")
    edited: Sequence[np.ndarray] | None = None  # per sample: the image-token indices it edits
    extra: Sequence[dict] | None = (
        None  # per sample: more raw columns (e.g. the IG completeness gap)
    )
    score_gold: bool = (
        False  # also teacher-force the gold answer: column gold_nll (log-perplexity of its content)
    )

    def __post_init__(self):
        if self.image not in IMAGES:
            raise ValueError(
                f"condition {self.name}: image must be one of {IMAGES}, not {self.image!r}"
            )


@dataclass
class ShardJob:
    """What a model job gives an experiment for one shard."""

    adapter: Adapter
    runner: Runner
    samples: pd.DataFrame  # the shard's samples (probing subset rows; removed_path if any)
    categories: list[str]  # the dataset's categories, in id order (the list prompt's order)
    settings: dict  # the experiment's config entry
    max_new_tokens: dict[str, int]
    mean: torch.Tensor | None = None  # the model's mean visual embedding at the LLM input
    embedding_stats: dict = field(
        default_factory=dict
    )  # norm_mean / norm_std over the mean's image set
    present: list[list[str]] | None = (
        None  # per sample: the categories in its image (dataset order)
    )
    progress: bool = True
    pool: pd.DataFrame | None = None  # the whole probing subset, not only this shard's samples
    upstream: dict[str, str] = field(
        default_factory=dict
    )  # experiment -> its gathered output this one reads
    others: list[list[dict]] | None = (
        None  # per sample: RLE masks of its image's OTHER annotated objects
    )

    def other_masks(self) -> list[np.ndarray | None]:
        """Per sample: the union of its image's other objects (boolean (H, W)), None when unknown."""
        from ..data.coco import decode_mask

        if self.others is None:
            return [None] * len(self.samples)
        out = []
        for r, rles in zip(self.records, self.others, strict=True):
            union = np.zeros((int(r["height"]), int(r["width"])), dtype=bool)
            for rle in rles:
                union |= decode_mask(rle)
            out.append(union)
        return out

    @property
    def records(self) -> list[dict]:
        return self.samples.to_dict("records")

    @property
    def pool_ids(self) -> list[str]:
        """Every sample id of the probing subset (this shard's when the pool is not given)."""
        return list((self.pool if self.pool is not None else self.samples)["sample_id"])

    def layouts(self):
        return [self.adapter.layout(int(r["width"]), int(r["height"])) for r in self.records]

    def without(self, sample_ids) -> ShardJob:
        """The same job on the samples not in ``sample_ids``."""
        keep = ~self.samples["sample_id"].isin(set(sample_ids)).to_numpy()
        present = (
            [p for p, k in zip(self.present, keep, strict=True) if k]
            if self.present is not None
            else None
        )
        others = (
            [o for o, k in zip(self.others, keep, strict=True) if k]
            if self.others is not None
            else None
        )
        return replace(
            self, samples=self.samples[keep].reset_index(drop=True), present=present, others=others
        )


class Experiment:
    """Base class. ``conditions`` may compute what it needs with the job's model (e.g.
    attributions) and yields conditions one by one, so each is run as soon as it is ready."""

    name: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ("localization", "list")
    param_columns: ClassVar[tuple[str, ...]] = ()

    def settings(self, job: ShardJob) -> dict:
        """The job's config entry (``experiments.<name>``) completed with the schema's defaults
        (``vlmloc.defaults``): a partial entry, a test's or a script's, runs as the workflow's."""
        return with_defaults(f"experiments.{self.name}", job.settings)

    def skip_reason(self, adapter: Adapter) -> str | None:
        """Why this model cannot run the experiment (e.g. it has no local views), or None."""
        return None

    def exclude(self, job: ShardJob) -> dict[str, str]:
        """Samples this experiment cannot use, with the reason (e.g. an image with one view for
        an ablation of the local views). They are written as one ``excluded`` row each, so the
        gather still proves that no sample was lost."""
        return {}

    def conditions(self, job: ShardJob) -> Iterator[Condition]:
        raise NotImplementedError

    def run(self, job: ShardJob, log=None) -> pd.DataFrame:
        """Raw rows of the job's (not excluded) samples: by default every condition, generated.
        An experiment with another readout (mediation: teacher-forced scores) overrides it."""
        return run_conditions(self.name, self.conditions(job), job, self.param_columns, log)


EXPERIMENTS: dict[str, type[Experiment]] = {}


def register(cls: type[Experiment]) -> type[Experiment]:
    if not cls.name or cls.name in EXPERIMENTS:
        raise ValueError(f"experiment name {cls.name!r} is empty or taken")
    EXPERIMENTS[cls.name] = cls
    return cls


def get_experiment(name: str) -> Experiment:
    from . import load_all

    load_all()
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]()


def sample_rng(seed: int, sample_id: str, *salt: int) -> np.random.Generator:
    """A generator per (seed, sample): a sample's draw does not depend on its shard."""
    return np.random.default_rng([int(seed), zlib.crc32(str(sample_id).encode()), *map(int, salt)])


def share_count(n_tokens: int, percent: float) -> int:
    """k% of an image's tokens, rounded half up, at least one."""
    return max(1, int(np.floor(n_tokens * percent / 100 + 0.5)))


def token_counts(adapter: Adapter, record: dict, edited: np.ndarray | None) -> dict[str, int]:
    """Image tokens and edited tokens of one sample, in all and per kind of view (global, local)."""
    layout = adapter.layout(int(record["width"]), int(record["height"]))
    edited = np.zeros(0, dtype=int) if edited is None else np.asarray(edited, dtype=int)
    out = {"n_tokens": layout.n_tokens, "n_edited": len(np.unique(edited))}
    for kind in ("global", "local"):
        idx = [np.arange(v.offset, v.offset + v.n_tokens) for v in layout.views if v.kind == kind]
        idx = np.concatenate(idx) if idx else np.zeros(0, dtype=int)
        out[f"n_tokens_{kind}"] = len(idx)
        out[f"n_edited_{kind}"] = int(np.isin(idx, edited).sum())
    return out


RAW_COLUMNS = [
    "sample_id",
    "experiment",
    "condition",
    "task",
    "image",
    "prompt",
    "answer",
    "truncated",
    "n_tokens",
    "n_edited",
    "n_tokens_global",
    "n_edited_global",
    "n_tokens_local",
    "n_edited_local",
]


def run_shard(experiment: Experiment, job: ShardJob, log=None) -> pd.DataFrame:
    """Every condition of ``experiment`` on the job's samples: one raw row per (sample,
    condition, task). Both tasks of a condition share each image's prefix run."""
    excluded = experiment.exclude(job) if len(job.samples) else {}
    if excluded:
        job = job.without(excluded)
        if log is not None:
            log.info(
                "%d samples excluded (%s)", len(excluded), "; ".join(sorted(set(excluded.values())))
            )
    if not len(job.samples):
        out = pd.DataFrame(
            columns=RAW_COLUMNS[:3] + list(experiment.param_columns) + RAW_COLUMNS[3:]
        )
    else:
        out = experiment.run(job, log)
    if excluded:
        rows = [
            {
                "sample_id": sid,
                "experiment": experiment.name,
                "condition": EXCLUDED,
                "task": "none",
                "image": "original",
                "prompt": "",
                "answer": why,
                "truncated": False,
            }
            for sid, why in excluded.items()
        ]
        attrs = dict(out.attrs)  # concat keeps attrs only when every part has the same
        out = (
            pd.concat([out, pd.DataFrame(rows).reindex(columns=out.columns)], ignore_index=True)
            if len(out)
            else pd.DataFrame(rows).reindex(columns=out.columns)
        )
        out.attrs.update(attrs)
    return out


def shares_prefix(cond: Condition) -> bool:
    """Conditions whose intervention leaves the image prefix alone can share one prefix run."""
    return cond.intervention is None or not getattr(cond.intervention, "touches_prefix", True)


def run_conditions(
    experiment: str, conditions, job: ShardJob, param_columns: Sequence[str] = (), log=None
) -> pd.DataFrame:
    """The loop behind ``run_shard``, for any iterable of conditions. Consecutive conditions that
    leave the prefix alone (a knockout after the image, the baseline) and ask the same tasks
    about the same images share one prefix run per batch (``Runner.generate_conditions``)."""
    records = job.records
    columns = RAW_COLUMNS[:3] + list(param_columns) + RAW_COLUMNS[3:]
    rows: list[dict] = []
    group: list[Condition] = []

    def flush():
        if group:
            rows.extend(_run_group(experiment, group, job, log))
            group.clear()

    expected: list[
        list[str]
    ] = []  # every (condition, task) the experiment asked: the gather's check
    for cond in conditions:
        expected.extend([cond.name, t] for t in cond.tasks)
        if cond.image == "removed" and any(pd.isna(r.get("removed_path")) for r in records):
            raise ValueError(
                f"condition {cond.name} asks about object-removed images, and some samples have none"
            )
        same = (
            (cond.image, cond.tasks, cond.score_gold)
            == (group[0].image, group[0].tasks, group[0].score_gold)
            if group
            else False
        )
        if group and not (shares_prefix(cond) and shares_prefix(group[0]) and same):
            flush()
        group.append(cond)
        if not shares_prefix(cond):
            flush()
    flush()
    out = pd.DataFrame(rows)
    out = out.reindex(columns=columns + [c for c in out.columns if c not in columns])
    out.attrs[EXPECTED] = expected  # kept in the shard's parquet metadata
    return out


def raw_row(
    experiment: str, cond: Condition, record: dict, task: str, prompt: str, answer, more: dict
) -> dict:
    """One raw row: sample, condition and its parameters, task, the answer as generated."""
    return {
        "sample_id": record["sample_id"],
        "experiment": experiment,
        "condition": cond.name,
        **cond.params,
        "task": task,
        "image": cond.image,
        "prompt": prompt,
        "answer": str(answer),
        "truncated": bool(getattr(answer, "truncated", False)),
        **more,
    }


def _run_group(experiment: str, group: list[Condition], job: ShardJob, log=None) -> list[dict]:
    records, first = job.records, group[0]
    images = [r["image_path"] if first.image == "original" else r["removed_path"] for r in records]
    prompts = [
        [task_prompt(t, r["category"], job.categories) for r in records] for t in first.tasks
    ]
    desc = first.name if len(group) == 1 else f"{first.name} +{len(group) - 1} sharing its prefix"
    answers = job.runner.generate_conditions(
        images,
        prompts,
        [job.max_new_tokens[t] for t in first.tasks],
        [c.intervention for c in group],
        desc=desc,
    )
    gold = [[[{}] * len(records) for _ in first.tasks] for _ in group]
    if first.score_gold:
        golds = [
            [job.adapter.gold_tokens(t, r, p) for r, p in zip(records, ps, strict=True)]
            for t, ps in zip(first.tasks, prompts, strict=True)
        ]
        nll = job.runner.score_conditions(
            images, prompts, golds, [c.intervention for c in group], desc=desc
        )
        gold = [[[{"gold_nll": float(v)} for v in task] for task in cond] for cond in nll]
    rows = []
    for cond, cond_answers, cond_gold in zip(group, answers, gold, strict=True):
        edited = cond.edited if cond.edited is not None else [None] * len(records)
        extra = cond.extra if cond.extra is not None else [{}] * len(records)
        counts = [token_counts(job.adapter, r, e) for r, e in zip(records, edited, strict=True)]
        for task, task_prompts, task_answers, task_gold in zip(
            cond.tasks, prompts, cond_answers, cond_gold, strict=True
        ):
            for r, p, a, c, x, g in zip(
                records, task_prompts, task_answers, counts, extra, task_gold, strict=True
            ):
                rows.append(raw_row(experiment, cond, r, task, p, a, {**c, **x, **g}))
        if log is not None:
            log.info("condition %s: %d samples x %s", cond.name, len(records), "/".join(cond.tasks))
    return rows
