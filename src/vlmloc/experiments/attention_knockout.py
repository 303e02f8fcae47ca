"""Paper sec. 3.3.1 and appendix 9 (Fig. 3, Fig. 12): attention knockout across layers.

In a window of consecutive decoder layers, every query after the image (the rest of the prompt
and the answer) is kept from attending to the object's visual tokens (the mask, or the mask
padded by +1 token layer), for both tasks. Windows: groups of ``fig3_window`` layers (paper: 4),
and of each size in ``fig12_windows`` (paper: 6 and 1), non-overlapping (``stride`` = the size
unless set; a last, shorter group covers the remaining layers), plus all layers at once. A
control the paper lacks blocks as many RANDOM visual tokens as the object has, in the same
windows. Knockouts leave the image prefix alone, so one prefix run per batch serves every
condition (``Runner.generate_conditions``).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..interventions import AttentionKnockout
from .base import Condition, Experiment, ShardJob, register
from .token_ablation import object_indices, random_indices_like


def layer_windows(n_layers: int, sizes, stride: int | None = None, all_layers: bool = True) -> list[tuple[int, int]]:
    """(first, last) layer of every window, each size's windows in order, then all layers."""
    out = []
    for size in dict.fromkeys(int(s) for s in sizes):
        if size >= n_layers:
            continue
        for start in range(0, n_layers, stride or size):
            out.append((start, min(start + size, n_layers) - 1))
            if start + size >= n_layers:
                break
    if all_layers:
        out.append((0, n_layers - 1))
    return list(dict.fromkeys(out))


def window_sizes(settings: dict) -> list[int]:
    return list(dict.fromkeys([int(settings["fig3_window"]), *map(int, settings["fig12_windows"])]))


@register
class AttentionKnockoutExperiment(Experiment):
    name = "attention_knockout"
    param_columns = ("strategy", "padding", "window", "layer_first", "layer_last", "seed")

    def conditions(self, job: ShardJob) -> Iterator[Condition]:
        s, samples, adapter = job.settings, job.samples, job.adapter
        n = adapter.num_layers
        masks = {p: object_indices(adapter, samples, p) for p in s["paddings"]}
        if s.get("random_control", True):
            counts = [len(i) for i in object_indices(adapter, samples, 0)]
            masks["random"] = random_indices_like(adapter, samples, counts, s.get("random_seed", 0))
        yield Condition("baseline", {"strategy": "baseline"})
        for first, last in layer_windows(n, window_sizes(s), s.get("stride"), s.get("all_layers", True)):
            size = last - first + 1
            where = {"window": size if size < n else n, "layer_first": first, "layer_last": last}
            for key, keys in masks.items():
                if key == "random":
                    params = {"strategy": "random", "padding": 0, "seed": s.get("random_seed", 0), **where}
                    name = f"random_l{first}-{last}"
                else:
                    params = {"strategy": "object", "padding": key, **where}
                    name = f"object{key:+d}_l{first}-{last}"
                yield Condition(name, params, AttentionKnockout(range(first, last + 1), keys), edited=keys)
