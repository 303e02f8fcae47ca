"""The two known-mechanism toys side by side (config/mechanisms.yaml): Fig 1's diagonal, Table 2's
shuffle costs and the positional probes per layer, each with the verdict it feeds."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..tables.mechanisms import fig1_margins  # noqa: E402

COLOURS = {"content": "#4477aa", "container": "#ee6677"}


def _fig1_panel(ax, cells: pd.DataFrame, roles: dict, paddings: list[int]) -> None:
    """(a) Fig 1's diagonal: the grown object's answer scored at s = 0 and at s = p."""
    width = 0.2
    for i, (role, model) in enumerate(roles.items()):
        c = cells[cells["model"] == model].set_index(["padding", "scale"])["mean"]
        x = np.arange(len(paddings))
        for j, (label, scale) in enumerate((("s = 0", lambda p: 0), ("s = p", lambda p: p))):
            ax.bar(
                x + (2 * i + j - 1.5) * width,
                [c[(p, scale(p))] for p in paddings],
                width,
                color=COLOURS[role],
                alpha=0.45 if j == 0 else 1.0,
                label=f"{role}, {label}",
            )
    margins = {
        role: min(fig1_margins(cells, model, paddings).values()) for role, model in roles.items()
    }
    ax.set_xticks(np.arange(len(paddings)), [f"p = {p}" for p in paddings])
    ax.set_ylabel("localization score (%)")
    ax.set_ylim(0, 1.45 * max(ax.get_ylim()[1], 1))
    ax.set_title(
        "(a) object grown by p: scored at s = 0 or s = p\n"
        + "min(s=p − s=0): "
        + ", ".join(f"{r} {m:+.1f}" for r, m in margins.items()),
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="upper center", ncol=2)


def _shuffle_panel(ax, shuffle: pd.DataFrame, verdicts: pd.DataFrame, roles: dict) -> None:
    """(b) Table 2: the points a shuffle costs, and the full shuffle's container / content ratio."""
    modes = [m for m in ("full", "object") if m in set(shuffle["mode"])]
    for i, (role, model) in enumerate(roles.items()):
        t = shuffle[shuffle["model"] == model].set_index("mode")
        ax.bar(
            np.arange(len(modes)) + (i - 0.5) * 0.35,
            [-t.loc[m, "loc_drop"] for m in modes],
            0.35,
            yerr=[t.loc[m, "loc_std"] if pd.notna(t.loc[m, "loc_std"]) else 0 for m in modes],
            color=COLOURS[role],
            label=f"{role} ({model})",
        )
    ratio = verdicts[(verdicts["verdict"] == "full_shuffle_cost") & (verdicts["role"] == "ratio")]
    subtitle = (
        f"\nfull shuffle: container / content = ×{float(ratio['value'].iloc[0]):.2f}"
        if len(ratio)
        else ""
    )
    ax.set_xticks(np.arange(len(modes)), [f"{m} shuffle" for m in modes])
    ax.set_ylabel("localization points lost")
    ax.axhline(0, color="k", lw=0.5)
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, 0), 1.3 * max(high, 1))
    ax.set_title("(b) shuffling visual tokens (Table 2)" + subtitle, fontsize=8)
    ax.legend(fontsize=7, loc="upper center", ncol=2)


def _probe_panel(
    ax, layers: pd.DataFrame, verdicts: pd.DataFrame, roles: dict, method: str, content: str
) -> None:
    """(c) the positional probes per layer (test split), the projector marked."""
    sites = []
    for role, model in roles.items():
        t = layers[
            (layers["model"] == model)
            & (layers["method"] == method)
            & (layers["variant"] == "true")
            & (layers["split"] == "test")
            & (layers["kind"] == "all")
            & (layers["stage"] != "control")
        ]
        ax.plot(
            range(len(t)), t["acc_position"], "o-", color=COLOURS[role], label=f"{role} ({model})"
        )
        proj = np.flatnonzero((t["stage"] == "projector").to_numpy())
        ax.plot(proj, t["acc_position"].to_numpy()[proj], "s", ms=10, mfc="none", color="k")
        sites = list(t["site"])
    chance = layers.loc[layers["model"] == content, "chance_position"]
    if len(chance):
        ax.axhline(chance.iloc[0], color="grey", ls=":", lw=1, label="chance")
    ax.set_xticks(range(len(sites)), sites, rotation=60, fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(f"row/column probe accuracy ({method})")
    gaps = verdicts[verdicts["verdict"] == "projector_probe"].set_index("role")["value"]
    ax.set_title(
        "(c) position decodable per layer (projector: square)\n"
        + "best LLM layer − projector: "
        + ", ".join(f"{r} {gaps[r]:+.2f}" for r in roles if r in gaps),
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="center left")


def plot_mechanisms(
    cells: pd.DataFrame,
    shuffle: pd.DataFrame,
    layers: pd.DataFrame,
    verdicts: pd.DataFrame,
    content: str,
    container: str,
    paddings: list[int],
    probe_method: str,
    png: str,
    pdf: str,
    **_rules,
):
    """The keyword arguments are the workflow's `mechanisms:` settings, as `verdicts` takes them
    (the rules' thresholds are in ``verdicts``, not drawn)."""
    roles = {"content": content, "container": container}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))

    _fig1_panel(axes[0], cells, roles, paddings)
    _shuffle_panel(axes[1], shuffle, verdicts, roles)
    _probe_panel(axes[2], layers, verdicts, roles, probe_method, content)
    fig.tight_layout()
    fig.savefig(png, dpi=130)
    fig.savefig(pdf)
    plt.close(fig)
    return fig
