"""Accuracy against the share of image tokens removed, one line per strategy (paper sec. 3.1)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

STYLE = {
    "object": ("tab:red", "o", "object (padding -2..+2)"),
    "ig": ("tab:blue", "s", "integrated gradients top-k"),
    "random": ("tab:gray", "^", "random (mean ± std over seeds)"),
    "register": ("tab:green", "D", "register tokens"),
}
TASKS = (("loc", "localization score"), ("cls", "classification (list)"))


def plot_token_ablation(table: pd.DataFrame, png: str, pdf: str):
    """Per model, accuracy of each task against the share of tokens removed; returns the figure
    (its lines carry gids ``{model}:{task}:{strategy}``)."""
    models = list(dict.fromkeys(table["model"])) if len(table) else []
    fig, axes = plt.subplots(
        max(1, len(models)), 2, figsize=(10, 3.3 * max(1, len(models))), squeeze=False
    )
    for row, model in enumerate(models):
        t = table[table["model"] == model]
        base = t[t["strategy"] == "baseline"]
        for col, (short, label) in enumerate(TASKS):
            ax = axes[row, col]
            if len(base):
                ax.axhline(base[short].iloc[0], color="k", ls="--", lw=1, label="baseline")
            for strategy, (colour, marker, name) in STYLE.items():
                s = t[t["strategy"] == strategy].sort_values("token_pct")
                if s.empty:
                    continue
                err = s[f"{short}_std"] if strategy == "random" else None
                line = ax.errorbar(
                    s["token_pct"],
                    s[short],
                    yerr=err,
                    color=colour,
                    marker=marker,
                    ms=5,
                    capsize=2,
                    lw=1.5,
                    label=name,
                )[0]
                line.set_gid(f"{model}:{short}:{strategy}")
                ax.fill_between(
                    s["token_pct"],
                    s[f"{short}_lo"],
                    s[f"{short}_hi"],
                    color=colour,
                    alpha=0.12,
                    lw=0,
                )
                if s["paper_" + short].notna().any() and strategy in ("ig", "random"):
                    ax.plot(s["param"], s["paper_" + short], color=colour, ls=":", lw=1)
            ax.set_title(f"{model}: {label}")
            ax.set_xlabel("image tokens replaced by the mean embedding (%)")
            ax.set_ylabel("%")
            ax.set_ylim(-3, 105)
            ax.grid(alpha=0.3)
    if models:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    else:
        for ax in axes[0]:
            ax.text(
                0.5,
                0.5,
                "no samples in the probing subset",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set_axis_off()
    fig.suptitle(
        "Token ablation: shaded = 95% bootstrap interval over samples; dotted = paper (where given)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(png, dpi=130)
    fig.savefig(pdf)
    plt.close(fig)
    return fig
