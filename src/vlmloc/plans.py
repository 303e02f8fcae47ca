"""Each experiment's plan, declared once and torch-free: what it needs and the work it does per
sample, read by everything that must know it without running it:

- ``workflow/rules/common.smk``: its inputs (the mean visual embedding, another experiment's
  output) and which models it skips (no local views);
- ``vlmloc.workflow.settings``: the keys that change only its tables and figures (left out of the
  model jobs' params, so they rerun no model job);
- ``vlmloc.workload``: its FLOPs (each job's wall time, the paper scope's GPU-hours);
- ``experiments.attention_knockout``: the knockout's windows, the same ones the count counts.

Adding an experiment adds its ``Plan`` here (and its module, rules, schema block and docs page).
Every ``work`` function takes the experiment's settings completed with the schema's defaults,
the decoder's layers and its heads per layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

BOTH = ("localization", "list")  # the two tasks of most experiments


@dataclass(frozen=True)
class Work:
    """One sample's work (a pair's, for mediation): vision-tower passes, image-prefix runs of the
    LLM, and per task the conditions that generate an answer, the teacher-forced gold answers
    scored, and the integrated-gradients steps."""

    vision: int = 1
    prefix_runs: int = 1
    generated: dict[str, int] = field(default_factory=dict)
    scored: dict[str, int] = field(default_factory=dict)
    ig_steps: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    work: Callable[[dict, int, int], Work]  # (settings, decoder layers, heads) -> one sample's
    mean_embedding: bool = False  # ablations write the model's mean visual embedding
    local_views: bool = False  # needs local views (tiles); models without them are skipped
    upstream: str | None = None  # another experiment whose output (same model, dataset) it reads
    per_pair: bool = False  # its unit is a mediation pair (``n_pairs``), not a sample
    presentation: frozenset[str] = frozenset()  # keys that change only its tables and figures


# ---- the knockout's windows ---------------------------------------------------------------------


def layer_windows(
    n_layers: int, sizes, stride: int | None = None, all_layers: bool = True
) -> list[tuple[int, int]]:
    """(first, last) layer of every window: each size's windows in order, then all layers."""
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


def window_sizes(s: dict) -> list[int]:
    return list(dict.fromkeys([int(s["fig3_window"]), *map(int, s["fig12_windows"])]))


def control_windows(n_layers: int, s: dict) -> set[tuple[int, int]]:
    """The windows that also get the knockout's controls: those of Fig. 3 and all layers
    (``control_windows: fig3``), or every window (``all``)."""
    which = s["control_windows"]
    if which == "all":
        return set(layer_windows(n_layers, window_sizes(s), s["stride"], s["all_layers"]))
    if which == "fig3":
        return set(layer_windows(n_layers, [int(s["fig3_window"])], s["stride"], s["all_layers"]))
    raise ValueError(f"attention_knockout.control_windows must be 'fig3' or 'all', not {which!r}")


def knockout_conditions(layers: int, s: dict) -> int:
    """The knockout's conditions: its windows x object masks, the controlled windows x control
    draws, and the baseline."""
    windows = layer_windows(layers, window_sizes(s), s["stride"], s["all_layers"])
    controls = len(s["random_seeds"]) if s["random_control"] else 0
    controls += len(s["translated_seeds"]) if s["translated_control"] else 0
    return len(windows) * len(s["paddings"]) + len(control_windows(layers, s)) * controls + 1


# ---- each experiment's work per sample ------------------------------------------------------------


def ig_steps(ig: dict, task: str) -> int:
    """``steps`` is one number, or one per task (the box target's path integral is the sharper)."""
    steps = ig["steps"]
    return int(steps[task] if isinstance(steps, dict) else steps)


def _ig_steps(ig: dict) -> dict[str, int]:
    return {t: ig_steps(ig, t) for t in BOTH}


def _same_prefix(runs: int, tasks=BOTH) -> Work:
    """``runs`` conditions, each its own image-prefix run, each asking every task once."""
    return Work(prefix_runs=runs, generated=dict.fromkeys(tasks, runs))


def _token_ablation(s: dict, layers: int, heads: int) -> Work:
    ig, rnd = s["integrated_gradients"], s["random"]
    k = len(ig["k"])
    runs = 1 + len(s["paddings"]) + 1 + len(rnd["k"]) * len(rnd["seeds"])  # + baseline, register
    # IG's top-k ablations ask one task each (its own attributions)
    return Work(
        prefix_runs=runs + 2 * k,
        generated=dict.fromkeys(BOTH, runs + k),
        ig_steps=_ig_steps(ig),
    )


def _token_ablation_matched(s: dict, layers: int, heads: int) -> Work:
    runs = 2 + len(s["random"]["seeds"])  # baseline, object, the random draws
    return Work(
        prefix_runs=runs + 2,
        generated={"localization": runs + 2, "list": runs},
        ig_steps=_ig_steps(s["integrated_gradients"]),
    )


def _head_ablation(s: dict, layers: int, heads: int) -> Work:
    curves = sum(len(s["random_seeds"]) if x == "random" else 1 for x in s["settings"])
    ablations, positions = (
        [v] if isinstance(v, str) else list(v) for v in (s["ablation"], s["positions"])
    )
    per_variant = curves * len(s["proportions"])
    conditions = 1 + per_variant * len(ablations) * len(positions)
    # ablated at every position, a condition reruns the image prefix
    runs = 1 + per_variant * len(ablations) * positions.count("all")
    return Work(
        prefix_runs=runs,
        generated={"localization": conditions},
        scored={"localization": conditions},
    )


def _mediation(s: dict, layers: int, heads: int) -> Work:
    # the source and the base image, each its prefix; per task the two clean scores + each head
    return Work(vision=2, prefix_runs=2, scored={t: 2 + layers * heads for t in s["tasks"]})


PLANS: dict[str, Plan] = {
    "token_ablation": Plan(_token_ablation, mean_embedding=True),
    "token_ablation_matched": Plan(_token_ablation_matched, mean_embedding=True),
    "containerization": Plan(
        lambda s, layers, heads: _same_prefix(1 + len(s["paddings"]) * len(s["seeds"]), s["tasks"]),
        presentation=frozenset({"metric", "examples"}),
    ),
    "token_shuffle": Plan(
        lambda s, layers, heads: _same_prefix(1 + len(s["modes"]) * len(s["seeds"]))
    ),
    "view_ablation": Plan(
        lambda s, layers, heads: _same_prefix(1 + len(s["views"]) * len(s["paddings"])),
        mean_embedding=True,
        local_views=True,
        presentation=frozenset({"figure_padding"}),
    ),
    "attention_knockout": Plan(
        lambda s, layers, heads: Work(generated=dict.fromkeys(BOTH, knockout_conditions(layers, s)))
    ),
    "mediation": Plan(_mediation, per_pair=True, presentation=frozenset({"min_log_gap"})),
    "head_ablation": Plan(_head_ablation, upstream="mediation"),
}
