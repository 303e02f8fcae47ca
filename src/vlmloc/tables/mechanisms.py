"""Do the experiments tell two known mechanisms apart? (config/mechanisms.yaml)

Two toys of one architecture differ in what their visual tokens were trained to carry:

- **content**: every token knows its cell's position and, on the object, the object's box; the
  LLM can copy the box from any object token;
- **container**: tokens know only the category they show; the LLM must find the box from WHICH
  tokens of the sequence show the object (the paper's containerization).

Each verdict is a number and a rule fixed before the run (``RULES``), with the outcome each
mechanism predicts. A verdict whose outcome differs from its prediction is reported as such: the
predictions are hypotheses about the methods, not thresholds to tune. Torch-free: the inputs are
the experiments' own tables (containerization cells, Table 2, the probes' best layers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# verdict -> (the rule, what the content toy should give, what the container toy should give);
# a `None` prediction: a comparison between the two toys, predicted to hold
RULES = {
    "containerizes": (
        "Fig 1: the s = p cell beats the s = 0 cell for every grown padding p "
        "(value: the smallest margin, points)",
        False,
        True,
    ),
    "full_shuffle_relative": (
        "Table 2 rows: the fraction of its own baseline localization (success at IoU 0.5) a full "
        "shuffle costs; the container toy's at least `shuffle_min_loss`, and at least "
        "`shuffle_ratio` times the content toy's (the ratio row)",
        None,
        True,
    ),
    "full_shuffle_cost": (
        "Table 2: points of localization a full shuffle costs (the earlier rule, reported beside: "
        "the container toy's at least `shuffle_ratio` times the content toy's points)",
        None,
        None,
    ),
    "object_shuffle_cost": ("Table 2: points an object-token shuffle costs (no rule)", None, None),
    "projector_probe": (
        "Fig 2: best LLM layer's probe accuracy minus the projector's is at most "
        "`probe_tolerance` (the position is already in the projected tokens)",
        True,
        False,
    ),
}
COLUMNS = ["verdict", "model", "role", "value", "holds", "predicted", "as_predicted", "rule"]


def fig1_margins(cells: pd.DataFrame, model: str, paddings: list[int]) -> dict[int, float]:
    """Per grown padding p: the score at s = p minus the score at s = 0 (points)."""
    c = cells[cells["model"] == model].set_index(["padding", "scale"])["mean"]
    missing = [(p, s) for p in paddings for s in (0, p) if (p, s) not in c.index]
    if missing:
        raise ValueError(f"{model}: no containerization cell for (padding, scale) {missing}")
    return {p: float(c[(p, p)] - c[(p, 0)]) for p in paddings}


def shuffle_costs(shuffle: pd.DataFrame, model: str) -> dict[str, float]:
    """Points of localization each shuffle mode costs (a positive cost: a loss)."""
    t = shuffle[(shuffle["model"] == model) & (shuffle["mode"] != "baseline")]
    if t.empty:
        raise ValueError(f"{model}: no token-shuffle rows")
    return {m: -float(d) for m, d in zip(t["mode"], t["loc_drop"], strict=True)}


def relative_shuffle_loss(rows: pd.DataFrame, model: str, threshold: float = 0.5) -> float:
    """The fraction of its baseline success at IoU ``threshold`` a full shuffle costs a model,
    from its token-shuffle rows (localization, every seed): 1 - success(full) / success(baseline).
    """
    loc = rows[rows["task"] == "localization"]
    success = loc.groupby("mode")[f"success@{threshold}"].mean()
    if "baseline" not in success or "full" not in success:
        raise ValueError(f"{model}: token-shuffle rows lack the baseline or the full shuffle")
    if success["baseline"] <= 0:
        raise ValueError(f"{model}: no baseline localization to lose (success 0 at IoU 0.5)")
    return float(1 - success["full"] / success["baseline"])


def probe_gap(best: pd.DataFrame, model: str, method: str) -> tuple[float, float, float]:
    """(projector accuracy, best LLM layer's test accuracy, their difference)."""
    t = best[(best["model"] == model) & (best["method"] == method)]
    if len(t) != 1:
        raise ValueError(f"{model}: {len(t)} best-layer rows for probe method {method!r}")
    proj, llm = float(t["acc_projector"].iloc[0]), float(t["acc_best_llm"].iloc[0])
    return proj, llm, llm - proj


def verdicts(
    cells: pd.DataFrame,
    shuffle: pd.DataFrame,
    best: pd.DataFrame,
    content: str,
    container: str,
    paddings: list[int],
    probe_method: str = "sgd",
    probe_tolerance: float = 0.05,
    shuffle_ratio: float = 2.0,
    shuffle_min_loss: float = 0.5,
    shuffle_rows: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The verdict table: one row per (verdict, toy), and the comparisons' rows. The keyword
    arguments are the workflow's `mechanisms:` settings (`mechanism_params()` in common.smk);
    ``shuffle_rows`` (toy -> its token-shuffle rows) adds the relative shuffle verdict."""
    rows = []

    def add(verdict, model, role, value, holds, predicted):
        rows.append(
            {
                "verdict": verdict,
                "model": model,
                "role": role,
                "value": value,
                "holds": holds,
                "predicted": predicted,
                "as_predicted": None if predicted is None else bool(holds) == predicted,
                "rule": RULES[verdict][0],
            }
        )

    for role, model in (("content", content), ("container", container)):
        column = 1 if role == "content" else 2
        margin = min(fig1_margins(cells, model, paddings).values())
        add("containerizes", model, role, margin, margin > 0, RULES["containerizes"][column])
        proj, llm, gap = probe_gap(best, model, probe_method)
        add(
            "projector_probe",
            model,
            role,
            gap,
            gap <= probe_tolerance,
            RULES["projector_probe"][column],
        )
        costs = shuffle_costs(shuffle, model)
        for mode in ("full", "object"):
            if mode in costs:
                add(f"{mode}_shuffle_cost", model, role, costs[mode], None, None)
    pair = f"{container} / {content}"
    full = {r["role"]: r["value"] for r in rows if r["verdict"] == "full_shuffle_cost"}
    if len(full) == 2:
        ratio, holds = _at_least_times(full["container"], full["content"], shuffle_ratio)
        # judged only while no relative rule replaces it (it was stated in points, and a toy with
        # few points to lose cannot pass it however much of them it loses)
        add("full_shuffle_cost", pair, "ratio", ratio, holds, None if shuffle_rows else True)
    if shuffle_rows:
        rel = {}
        for role, model in (("content", content), ("container", container)):
            rel[role] = relative_shuffle_loss(shuffle_rows[model], model)
            predicted = RULES["full_shuffle_relative"][1 if role == "content" else 2]
            add(
                "full_shuffle_relative",
                model,
                role,
                rel[role],
                rel[role] >= shuffle_min_loss,
                predicted,
            )
        ratio, holds = _at_least_times(rel["container"], rel["content"], shuffle_ratio)
        add("full_shuffle_relative", pair, "ratio", ratio, holds, True)
    return pd.DataFrame(rows, columns=COLUMNS)


def _at_least_times(container: float, content: float, times: float) -> tuple[float, bool]:
    """(container / content, whether the container's loss is at least ``times`` the content's):
    a content toy that loses nothing (or gains) makes any positive container loss pass."""
    ratio = container / content if content > 0 else np.inf
    return ratio, bool(container >= times * max(content, 0.0) and container > 0)


def format_verdicts(table: pd.DataFrame) -> str:
    """The verdicts as a Markdown table (README, docs)."""
    lines = [
        "| verdict | toy | value | holds | predicted | as predicted |",
        "|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        value = f"{r.value:.3f}" if r.verdict == "projector_probe" else f"{r.value:.1f}"
        if r.verdict == "full_shuffle_relative":
            value = f"{100 * r.value:.1f}% of baseline"
        if r.role == "ratio":
            value = f"×{r.value:.2f}"

        def yn(x):
            return (
                "—"
                if x is None or (isinstance(x, float) and np.isnan(x))
                else ("yes" if x else "no")
            )

        lines.append(
            f"| {r.verdict} | {r.model} ({r.role}) | {value} | {yn(r.holds)} | "
            f"{yn(r.predicted)} | {yn(r.as_predicted)} |"
        )
    return "\n".join(lines) + "\n"
