"""Attention knockout across layers (paper Fig. 3 and Fig. 12)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

TASKS = (("loc", "localization", "tab:red"), ("cls", "classification", "tab:blue"))


def _panel(ax, t: pd.DataFrame, size: int, paddings=(0,), random: bool = True) -> None:
    base = t[t["strategy"] == "baseline"].iloc[0]
    for short, label, colour in TASKS:
        ax.axhline(base[short], color=colour, lw=1, ls="--", alpha=0.7, label=f"{label}, unmodified model")
        for padding, style in zip(paddings, ("-", (0, (4, 2))), strict=False):
            w = t[(t["strategy"] == "object") & (t["padding"] == padding) & (t["window"] == size)].sort_values("layer_first")
            x = (w["layer_first"] + w["layer_last"]) / 2
            name = f"{label}, object" + (f" mask +{int(padding)}" if padding else " mask")
            ax.plot(x, w[short], color=colour, ls=style, marker="o", ms=3, label=name)
            if padding == 0:
                ax.fill_between(x, w[f"{short}_lo"], w[f"{short}_hi"], color=colour, alpha=0.12, lw=0)
        r = t[(t["strategy"] == "random") & (t["window"] == size)].sort_values("layer_first")
        if random and len(r):
            ax.plot((r["layer_first"] + r["layer_last"]) / 2, r[short], color=colour, ls=":", lw=1, label=f"{label}, random control")
    windows = t[(t["strategy"] == "object") & (t["window"] == size)].drop_duplicates("layer_first").sort_values("layer_first")
    ax.set_xticks((windows["layer_first"] + windows["layer_last"]) / 2)
    ax.set_xticklabels([f"{int(a)}" if a == b else f"{int(a)}-{int(b)}" for a, b in zip(windows["layer_first"], windows["layer_last"], strict=True)],
                       fontsize=7 if len(windows) > 16 else 9)  # fmt: skip
    ax.set_ylim(-3, 105)
    ax.set_xlabel(f"layers knocked out ({size}-layer windows)" if size > 1 else "layer knocked out")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)


def _empty(fig, axes, png, pdf):
    for ax in axes.ravel():
        ax.text(0.5, 0.5, "no samples in the probing subset", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    fig.savefig(png, dpi=130)
    fig.savefig(pdf)
    plt.close(fig)


def _save_with_legend(fig, axes, png: str, pdf: str, bottom: float) -> None:
    """One legend for all panels, below them; PNG and PDF."""
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(png, dpi=130)
    fig.savefig(pdf)
    plt.close(fig)


def plot_fig3(table: pd.DataFrame, windows: dict[str, int], png: str, pdf: str) -> None:
    """One panel per model: accuracy per window of ``windows[model]`` layers; dashed: unmodified."""
    models = list(dict.fromkeys(table["model"])) if len(table) else []
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5 * max(1, len(models)), 3.8), squeeze=False)
    if not models:
        return _empty(fig, axes, png, pdf)
    for ax, model in zip(axes[0], models, strict=True):
        _panel(ax, table[table["model"] == model], windows[model])
        ax.set_title(f"{model}: knockout of the object, {windows[model]}-layer windows")
    _save_with_legend(fig, axes, png, pdf, bottom=0.14)


def plot_fig12(table: pd.DataFrame, windows: dict[str, list[int]], png: str, pdf: str) -> None:
    """Rows: models; columns: the window sizes of ``windows[model]`` (paper: 6 and 1); the
    object mask and the mask padded by +1 (dashed)."""
    models = list(dict.fromkeys(table["model"])) if len(table) else []
    cols = max((len(windows[m]) for m in models), default=1)
    fig, axes = plt.subplots(max(1, len(models)), cols, figsize=(5 * cols, 3.4 * max(1, len(models))), squeeze=False)
    if not models:
        return _empty(fig, axes, png, pdf)
    for row, model in enumerate(models):
        t = table[table["model"] == model]
        paddings = sorted(p for p in t.loc[t["strategy"] == "object", "padding"].unique())
        for col, size in enumerate(windows[model]):
            _panel(axes[row, col], t, size, paddings=tuple(paddings), random=False)
            axes[row, col].set_title(f"{model}: {size}-layer windows")
    _save_with_legend(fig, axes, png, pdf, bottom=0.08)
