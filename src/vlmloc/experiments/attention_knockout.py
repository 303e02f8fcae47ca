"""Paper sec. 3.3.1 and appendix 9 (Fig. 3, Fig. 12): attention knockout across layers.

In a window of consecutive decoder layers, every query after the image (the rest of the prompt
and the answer) is kept from attending to the object's visual tokens (the mask, or the mask
padded by +1 token layer), for both tasks. Windows: groups of ``fig3_window`` layers (paper: 4),
and of each size in ``fig12_windows`` (paper: 6 and 1), non-overlapping (``stride`` = the size
unless set; a last, shorter group covers the remaining layers), plus all layers at once.

Two controls the paper lacks (docs/methods/attention-knockout.md), in the Fig. 3 windows and
the all-layers window (``control_windows: fig3``, the default), or in every window (``all``):
- ``random``: as many visual tokens as the object mask has, drawn uniformly among the tokens
  that cover image pixels outside the object mask padded by ``random_outside_padding`` token
  layers, one draw per seed of ``random_seeds``;
- ``translated``: the object's own token mask moved, view by view, to another place of the same
  view's grid where it covers image pixels only and overlaps neither the padded object nor any
  other annotated object of the image; same size, shape and contiguity. The shift is drawn
  uniformly among the allowed ones, per seed of ``translated_seeds``.
A sample with no allowed draw gets no knockout in that control: its rows carry the reason in
``skip_reason`` and the tables leave them out and count them.

Knockouts leave the image prefix alone, so one prefix run per batch serves every condition
(``Runner.generate_conditions``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from ..data.filtering import sample_mask
from ..geometry import draw_translation, object_translations, random_outside_indices
from ..interventions import AttentionKnockout
from ..plans import control_windows, layer_windows, window_sizes  # what the FLOP count counts
from .base import Condition, Experiment, ShardJob, register, run_conditions, sample_rng
from .token_ablation import object_indices

TRANSLATED_SALT = 0x7472  # a translated draw's stream differs from the random draw of the same seed


def random_controls(
    adapter, samples, seeds, padding: int = 1
) -> dict[int, tuple[list[np.ndarray], list[str]]]:
    """Per seed: per sample, as many tokens as its object mask (padding 0) has, drawn outside the
    mask padded by ``padding`` (``random_outside_indices``), and why a sample has none ("" if it has).
    A sample's draw depends on (seed, sample id, count) only, not on its shard."""
    counts = [len(i) for i in object_indices(adapter, samples, 0)]
    records = samples.to_dict("records")
    out = {}
    for seed in seeds:
        draws = [
            random_outside_indices(
                adapter.layout(int(r["width"]), int(r["height"])),
                sample_mask(r),
                k,
                sample_rng(seed, r["sample_id"], k),
                padding,
            )
            for r, k in zip(records, counts, strict=True)
        ]
        out[int(seed)] = ([d[0] for d in draws], [d[1] for d in draws])
    return out


def translated_controls(
    adapter, samples, seeds, padding: int = 1, others=None
) -> dict[int, tuple[list[np.ndarray], list[str]]]:
    """Per seed: per sample, the object's token mask translated to a background place
    (``object_translations``, ``draw_translation``), and why a sample has none ("" if it has).
    ``others``: per sample, the union mask of its image's other objects (or None: unknown)."""
    records = samples.to_dict("records")
    others = others if others is not None else [None] * len(records)
    choices = [
        object_translations(
            adapter.layout(int(r["width"]), int(r["height"])), sample_mask(r), padding, o
        )
        for r, o in zip(records, others, strict=True)
    ]
    out = {}
    for seed in seeds:
        idx = [
            draw_translation(c, sample_rng(seed, r["sample_id"], TRANSLATED_SALT))
            if not why
            else np.zeros(0, dtype=int)
            for r, (c, why) in zip(records, choices, strict=True)
        ]
        out[int(seed)] = (idx, [why for _, why in choices])
    return out


@register
class AttentionKnockoutExperiment(Experiment):
    name = "attention_knockout"
    param_columns = ("strategy", "padding", "window", "layer_first", "layer_last", "seed")

    def run(self, job: ShardJob, log=None):
        return run_conditions(self.name, self.conditions(job, log), job, self.param_columns, log)

    def conditions(self, job: ShardJob, log=None) -> Iterator[Condition]:
        s, samples, adapter = self.settings(job), job.samples, job.adapter
        n = adapter.num_layers
        masks = {
            ("object", p, None): (object_indices(adapter, samples, p), None) for p in s["paddings"]
        }
        outside = int(s["random_outside_padding"])
        if s["random_control"]:
            for seed, draw in random_controls(adapter, samples, s["random_seeds"], outside).items():
                masks[("random", 0, seed)] = draw
        if s["translated_control"]:
            others = job.other_masks()
            if log is not None and job.others is None:
                log.warning(
                    "translated control: the samples name no annotation; other objects are not avoided"
                )
            for seed, draw in translated_controls(
                adapter, samples, s["translated_seeds"], outside, others
            ).items():
                masks[("translated", 0, seed)] = draw
        if log is not None:
            for (strategy, _, seed), (_, why) in masks.items():
                skipped = Counter(w for w in (why or []) if w)
                if skipped:
                    log.info(
                        "%s control, seed %s: %d of %d samples skipped (%s)",
                        strategy,
                        seed,
                        sum(skipped.values()),
                        len(samples),
                        "; ".join(f"{k}: {v}" for k, v in skipped.most_common(5)),
                    )
        yield Condition("baseline", {"strategy": "baseline"})
        controlled = control_windows(n, s)
        for first, last in layer_windows(n, window_sizes(s), s["stride"], s["all_layers"]):
            size = last - first + 1
            where = {"window": size if size < n else n, "layer_first": first, "layer_last": last}
            for (strategy, padding, seed), (keys, why) in masks.items():
                if strategy != "object" and (first, last) not in controlled:
                    continue
                if strategy == "object":
                    params, name = (
                        {"strategy": "object", "padding": padding, **where},
                        f"object{padding:+d}_l{first}-{last}",
                    )
                else:
                    params, name = (
                        {"strategy": strategy, "padding": padding, "seed": seed, **where},
                        f"{strategy}_s{seed}_l{first}-{last}",
                    )
                extra = [{"skip_reason": w} for w in why] if why is not None else None
                yield Condition(
                    name,
                    params,
                    AttentionKnockout(range(first, last + 1), keys),
                    edited=keys,
                    extra=extra,
                )
