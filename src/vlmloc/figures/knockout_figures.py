"""Attention knockout across layers (paper Fig. 3 and Fig. 12), with both controls.

Per task: the object knockout (solid; Fig 12 also the mask padded by +1, dashed) with its 95%
bootstrap interval over samples (band); the random control (dotted: the mean over seeds) and the
translated control (dash-dot: the object's own mask moved to a background place, mean over its
seeds), each with the 95% paired bootstrap interval of its drop over the samples it placed
(hatched band); the unmodified model (thin dashed horizontal). A control skips the samples it
cannot place (large objects), so it is drawn as the unmodified model plus its drop paired on the
samples it placed (``vlmloc.tables.knockout._paired_drops``), not as its raw accuracy over a different
sample set. Each function returns its Figure; the lines' labels name what they draw, and their y-data are the
table's numbers (tested).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

TASKS = (("loc", "localization", "tab:red"), ("cls", "classification", "tab:blue"))
PADDING_STYLES = ("-", (0, (4, 2)), (0, (1, 3)))


def _centres(w: pd.DataFrame) -> pd.Series:
    return (w["layer_first"] + w["layer_last"]) / 2


def _panel(ax, t: pd.DataFrame, size: int, paddings=(0,)) -> None:
    base = t[t["strategy"] == "baseline"].iloc[0]
    for short, label, colour in TASKS:
        ax.axhline(
            base[short], color=colour, lw=1, ls="--", alpha=0.7, label=f"{label}, unmodified model"
        )
        for padding, style in zip(paddings, PADDING_STYLES, strict=False):
            w = t[
                (t["strategy"] == "object") & (t["padding"] == padding) & (t["window"] == size)
            ].sort_values("layer_first")
            name = f"{label}, object" + (f" mask +{int(padding)}" if padding else " mask")
            ax.plot(_centres(w), w[short], color=colour, ls=style, marker="o", ms=3, label=name)
            ax.fill_between(
                _centres(w),
                w[f"{short}_lo"],
                w[f"{short}_hi"],
                color=colour,
                alpha=0.12 if padding == 0 else 0.06,
                lw=0,
                label=f"{label}, object mask: 95% interval" if padding == 0 else None,
            )
        for strategy, style, marker in (("random", ":", None), ("translated", "-.", "x")):
            r = t[(t["strategy"] == strategy) & (t["window"] == size)].sort_values("layer_first")
            if not len(r):
                continue
            seeds = int(r["seeds"].max()) if "seeds" in r and r["seeds"].notna().any() else 1
            paired = base[short] + r[f"{short}_drop"]
            name = f"{label}, {strategy} control" + (
                f" ({seeds} seeds)" if strategy == "random" else ""
            )
            ax.plot(
                _centres(r), paired, color=colour, ls=style, lw=1.2, marker=marker, ms=3, label=name
            )
            if f"{short}_drop_lo" in r:
                ax.fill_between(
                    _centres(r),
                    base[short] + r[f"{short}_drop_lo"],
                    base[short] + r[f"{short}_drop_hi"],
                    facecolor="none",
                    edgecolor=colour,
                    hatch="////" if strategy == "random" else "\\\\",
                    alpha=0.35,
                    lw=0,
                    label=f"{label}, {strategy} control: paired 95% interval",
                )
    windows = (
        t[(t["strategy"] == "object") & (t["window"] == size)]
        .drop_duplicates("layer_first")
        .sort_values("layer_first")
    )
    ax.set_xticks(_centres(windows))
    ax.set_xticklabels(
        [
            f"{int(a)}" if a == b else f"{int(a)}-{int(b)}"
            for a, b in zip(windows["layer_first"], windows["layer_last"], strict=True)
        ],
        fontsize=7 if len(windows) > 16 else 9,
    )
    ax.set_ylim(-3, 105)
    ax.set_xlabel(f"layers knocked out ({size}-layer windows)" if size > 1 else "layer knocked out")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)


def _empty(fig, axes, png, pdf):
    for ax in axes.ravel():
        ax.text(
            0.5,
            0.5,
            "no samples in the probing subset",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
    fig.savefig(png, dpi=130)
    fig.savefig(pdf)
    plt.close(fig)
    return fig


def _save_with_legend(fig, axes, png: str, pdf: str):
    """One legend for all panels, below them (its height from its rows); PNG and PDF."""
    handles, labels = axes[0, 0].get_legend_handles_labels()
    ncol = 3 if len(labels) <= 9 else 2
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7.5, frameon=False)
    rows = -(-len(labels) // ncol)
    fig.tight_layout(rect=(0, (0.17 * rows + 0.2) / fig.get_size_inches()[1], 1, 1))
    fig.savefig(png, dpi=130)
    fig.savefig(pdf)
    plt.close(fig)
    return fig


def plot_fig3(table: pd.DataFrame, windows: dict[str, int], png: str, pdf: str):
    """One panel per model: accuracy per window of ``windows[model]`` layers, the object mask
    and both controls; dashed: unmodified. Returns the Figure."""
    models = list(dict.fromkeys(table["model"])) if len(table) else []
    fig, axes = plt.subplots(
        1, max(1, len(models)), figsize=(max(9.0, 5.5 * len(models)), 5.2), squeeze=False
    )
    if not models:
        return _empty(fig, axes, png, pdf)
    for ax, model in zip(axes[0], models, strict=True):
        _panel(ax, table[table["model"] == model], windows[model])
        ax.set_title(
            f"{model}: knockout of the object, {windows[model]}-layer windows", fontsize=10
        )
    return _save_with_legend(fig, axes, png, pdf)


def plot_fig12(table: pd.DataFrame, windows: dict[str, list[int]], png: str, pdf: str):
    """Rows: models; columns: the window sizes of ``windows[model]`` (paper: 6 and 1); the
    object mask and the mask padded by +1 (dashed), and both controls. Returns the Figure."""
    models = list(dict.fromkeys(table["model"])) if len(table) else []
    cols = max((len(windows[m]) for m in models), default=1)
    fig, axes = plt.subplots(
        max(1, len(models)),
        cols,
        figsize=(max(9.0, 5.5 * cols), 3.6 * max(1, len(models)) + 1.6),
        squeeze=False,
    )
    if not models:
        return _empty(fig, axes, png, pdf)
    for row, model in enumerate(models):
        t = table[table["model"] == model]
        paddings = sorted(p for p in t.loc[t["strategy"] == "object", "padding"].unique())
        for col, size in enumerate(windows[model]):
            _panel(axes[row, col], t, size, paddings=tuple(paddings))
            axes[row, col].set_title(f"{model}: {size}-layer windows", fontsize=10)
    return _save_with_legend(fig, axes, png, pdf)
