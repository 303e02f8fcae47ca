"""Paper sec. 3.1.1 (Fig. 1, Fig. 8, Fig. 9, Table 2): does the predicted box follow the tokens
that look like the object, whatever their arrangement?

- ``containerization``: the object is grown by p token layers; every token of the new ring gets a
  copy of a token drawn at random from inside the original object mask (on each view's own grid:
  InternVL's tiles and thumbnail alike), one draw per seed. The localization answers are scored
  against the ground-truth box grown by s token layers (``geometry.scaled_box``), for every
  (p, s): if the model "containerizes", p = s fits best.
- ``token_shuffle``: the visual tokens are permuted at the LLM input, all of them or only those
  inside the object mask. A permutation never leaves its view (InternVL: within each tile and
  within the thumbnail).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from ..data.filtering import sample_mask
from ..geometry import cell_boxes, mask_grids, scale_view, scaled_box
from ..interventions import CopyVisualTokens
from ..models.base import ImageLayout
from .base import Condition, Experiment, ShardJob, register, sample_rng

_MODES = {"full": 1, "object": 2}  # salts of the shuffle draws


def grow_object(
    layout: ImageLayout, mask: np.ndarray, padding: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(targets, sources): the ring of ``padding`` token layers around the object mask, view by
    view, and for each ring token an object token of the same view drawn uniformly (with
    replacement) whose embedding it gets."""
    inside, grown = mask_grids(layout, mask, 0), mask_grids(layout, mask, padding)
    targets, sources = [], []
    for v in layout.views:
        obj = v.offset + np.flatnonzero(inside[v.name].ravel())
        ring = v.offset + np.flatnonzero((grown[v.name] & ~inside[v.name]).ravel())
        if len(ring) and len(obj):
            targets.append(ring)
            sources.append(rng.choice(obj, size=len(ring), replace=True))
    if not targets:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    return np.concatenate(targets), np.concatenate(sources)


def shuffle_tokens(
    layout: ImageLayout, mask: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(targets, sources) of a random permutation of every view's tokens (``mask=None``) or of
    the tokens inside the object mask, each view on its own."""
    grids = mask_grids(layout, mask, 0) if mask is not None else None
    targets, sources = [], []
    for v in layout.views:
        chosen = np.arange(v.n_tokens) if grids is None else np.flatnonzero(grids[v.name].ravel())
        chosen = v.offset + chosen
        targets.append(chosen)
        sources.append(rng.permutation(chosen))
    return np.concatenate(targets), np.concatenate(sources)


def ring_geometry(layout: ImageLayout, mask: np.ndarray, padding: int, grid: str) -> str:
    """The object's and the ring's cells on the scale view, in pixels (JSON; for Fig. 9)."""
    v = scale_view(layout, grid)
    inside, grown = mask_grids(layout, mask, 0)[v.name], mask_grids(layout, mask, padding)[v.name]
    return json.dumps(
        {"view": v.name, "object": cell_boxes(v, inside), "ring": cell_boxes(v, grown & ~inside)}
    )


def gt_box(record: dict) -> tuple[float, float, float, float]:
    x, y, w, h = (float(record[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
    return x, y, x + w, y + h


@register
class Containerization(Experiment):
    """Fig. 1 / Fig. 8 (and the examples of Fig. 9)."""

    name = "containerization"
    tasks = ("localization",)
    param_columns = ("padding", "seed")

    def conditions(self, job: ShardJob) -> Iterator[Condition]:
        s = self.settings(job)
        records, layouts = job.records, job.layouts()
        masks = [sample_mask(r) for r in records]
        grid, tasks = s["scale_grid"], tuple(s["tasks"])
        boxes = [
            {f"gt_box_s{k}": list(scaled_box(gt_box(r), lay, int(k), grid)) for k in s["scales"]}
            for r, lay in zip(records, layouts, strict=True)
        ]
        yield Condition("baseline", {"padding": 0}, tasks=tasks, extra=boxes)
        for p in s["paddings"]:
            geometry = [
                {"ring_geometry": ring_geometry(lay, m, int(p), grid)}
                for lay, m in zip(layouts, masks, strict=True)
            ]
            for i, seed in enumerate(s["seeds"]):
                moves = [
                    grow_object(lay, m, int(p), sample_rng(seed, r["sample_id"], int(p)))
                    for r, lay, m in zip(records, layouts, masks, strict=True)
                ]
                targets, sources = [t for t, _ in moves], [src for _, src in moves]
                extra = (
                    [{**b, **g} for b, g in zip(boxes, geometry, strict=True)] if i == 0 else boxes
                )
                yield Condition(
                    f"grow{p:+d}_s{seed}",
                    {"padding": int(p), "seed": int(seed)},
                    CopyVisualTokens(targets, sources),
                    tasks=tasks,
                    edited=targets,
                    extra=extra,
                )


@register
class TokenShuffle(Experiment):
    """Table 2."""

    name = "token_shuffle"
    param_columns = ("mode", "seed")

    def conditions(self, job: ShardJob) -> Iterator[Condition]:
        s, records, layouts = self.settings(job), job.records, job.layouts()
        yield Condition("baseline", {"mode": "baseline"})
        for mode in s["modes"]:
            if mode not in _MODES:
                raise ValueError(f"token_shuffle.modes: {mode!r} is not one of {sorted(_MODES)}")
            for seed in s["seeds"]:
                moves = [
                    shuffle_tokens(
                        lay,
                        sample_mask(r) if mode == "object" else None,
                        sample_rng(seed, r["sample_id"], _MODES[mode]),
                    )
                    for r, lay in zip(records, layouts, strict=True)
                ]
                targets = [t for t, _ in moves]
                yield Condition(
                    f"shuffle_{mode}_s{seed}",
                    {"mode": mode, "seed": int(seed)},
                    CopyVisualTokens(targets, [src for _, src in moves]),
                    edited=targets,
                )
