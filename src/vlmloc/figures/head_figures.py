"""Per-head causal mediation (paper Fig. 4 / 14, and how sparse MF is) and cumulative head
ablation (Fig. 5 / 15). Each function returns its Figure (tests read the drawn data back);
``save`` writes PNG and PDF. Fig. 13 (the method's schematic) is not drawn."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..experiments.heads_summary import TOP_SHARES, _task_order, top_k, top_share  # noqa: E402

TASK_LABEL = {"localization": "localization", "binary": "classification (binary query)"}
TASK_COLOUR = {"localization": "tab:red", "binary": "tab:blue"}
SETTING_STYLE = {
    "localization": ("Localization-critical", "tab:red"),
    "classification": ("Classification-critical", "tab:blue"),
    "lowest": ("Low-importance", "tab:green"),
    "random": ("Random", "tab:gray"),
}


def save(fig, png: str, pdf: str) -> None:
    fig.savefig(png, dpi=130)
    fig.savefig(pdf)
    plt.close(fig)


def _nothing(text: str):
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.set_axis_off()
    return fig


def head_grid(heads: pd.DataFrame, task: str, value: str = "mf_mean") -> np.ndarray:
    """layer x head array of one task's ``value``; NaN where a head has no score."""
    t = heads[heads["task"] == task]
    grid = np.full((int(heads["layer"].max()) + 1, int(heads["head"].max()) + 1), np.nan)
    grid[t["layer"].to_numpy(int), t["head"].to_numpy(int)] = t[value].to_numpy(float)
    return grid


def _heatmap(fig, ax, grid: np.ndarray, title: str) -> None:
    # symmetric limits centre white on MF = 0: red closes the gap, blue widens it
    vmax = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 0.0
    vmax = vmax or 1.0  # all zero or no score: any symmetric scale
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.8")
    norm = Normalize(-vmax, vmax)
    im = ax.imshow(grid, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    bar.set_label("MF", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    if not np.isfinite(grid).any():
        ax.text(0.5, 0.5, "no kept pairs", ha="center", va="center", transform=ax.transAxes)


def mediation_heatmaps(heads_by_model: dict[str, pd.DataFrame], paper_names: dict[str, str]):
    """Fig. 4 / 14: one row per model, columns localization and classification (binary query);
    mean MF per layer (y, 0 at the top) and head (x), diverging colours centred at 0; grey: no
    score."""
    models = [m for m, h in heads_by_model.items() if len(h)]
    if not models:
        return _nothing("no head scores")
    fig, axes = plt.subplots(len(models), 2, figsize=(10, 4.2 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        heads = heads_by_model[model]
        for ax, task in zip(axes[row], ("localization", "binary"), strict=True):
            t = heads[heads["task"] == task]
            if t.empty:
                ax.text(0.5, 0.5, f"no {task} rows", ha="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            name = paper_names.get(model) or model
            kept = f"{int(t['n_pairs'].max())} of {int(t['n_pairs_total'].max())} pairs kept"
            _heatmap(fig, ax, head_grid(heads, task), f"{name}: {TASK_LABEL[task]}\n{kept}")
    fig.tight_layout()
    return fig


def mediation_sparsity_figure(heads_by_model: dict[str, pd.DataFrame]):
    """Per model: |mean MF| of every head, sorted descending (log-log), one line per task; the
    legend gives the share of the total |MF| the top 1% of heads carry; dotted: top 1/5/10%."""
    models = [m for m, h in heads_by_model.items() if len(h)]
    if not models:
        return _nothing("no head scores")
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        heads = heads_by_model[model]
        for task in _task_order(heads["task"]):
            mf = heads.loc[heads["task"] == task, "mf_mean"].to_numpy(float)
            a = np.sort(np.abs(mf[np.isfinite(mf)]))[::-1]
            share = top_share(mf, top_k(len(mf), TOP_SHARES[0]))
            label = f"{TASK_LABEL.get(task, task)}: top {TOP_SHARES[0]}% carry {share:.0%}"
            ax.plot(np.arange(1, len(a) + 1), a, color=TASK_COLOUR.get(task), lw=1.2, label=label)
        n = int(heads.groupby("task").size().max())
        marks: dict[int, list[int]] = {}  # a small model puts several shares on one head
        for p in TOP_SHARES:
            marks.setdefault(top_k(n, p), []).append(p)
        for k, ps in marks.items():
            ax.axvline(k, color="0.5", ls=":", lw=0.8)
            ax.text(
                k,
                0.98,
                " top " + ", ".join(f"{p}%" for p in ps),
                transform=ax.get_xaxis_transform(),
                fontsize=7,
                va="top",
                ha="right",
                rotation=90,
                color="0.3",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        top = ax.get_ylim()[1]
        # heads at ~0 would stretch the axis for nothing
        ax.set_ylim(max(ax.get_ylim()[0], top * 1e-4), top)
        ax.set_xlabel("head rank by |MF|")
        ax.set_ylabel("|mean MF|")
        ax.set_title(model, fontsize=9)
        ax.grid(alpha=0.3, which="both", lw=0.4)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def _auc_label(auc: pd.DataFrame, model: str, setting: str) -> str:
    a = auc[(auc["model"] == model) & (auc["setting"] == setting)]
    a = a[a["seed"] == -1] if (a["seed"] == -1).any() else a
    if a.empty or pd.isna(a["auc"].iloc[0]):
        return ""
    std = a["auc_std"].iloc[0]
    return f" (AUC {a['auc'].iloc[0]:.2f}" + ("" if pd.isna(std) else f" ± {std:.2f}") + ")"


def _ablation_panel(ax, t: pd.DataFrame, auc: pd.DataFrame, model: str) -> None:
    known = [s for s in SETTING_STYLE if s in set(t["setting"])]
    for setting in known + [s for s in dict.fromkeys(t["setting"]) if s not in SETTING_STYLE]:
        s = t[t["setting"] == setting]
        label, colour = SETTING_STYLE.get(setting, (setting, None))
        by_p = s.groupby("proportion")
        if s["seed"].nunique() > 1:  # seeds: their mean, and the band they span
            y, lo, hi = by_p["accuracy"].mean(), by_p["accuracy"].min(), by_p["accuracy"].max()
        else:
            y, lo, hi = by_p["accuracy"].first(), by_p["acc_lo"].first(), by_p["acc_hi"].first()
        x = 100 * y.index.to_numpy(float)
        label += _auc_label(auc, model, setting)
        (line,) = ax.plot(x, y.to_numpy(), marker="o", ms=3, color=colour, label=label)
        ax.fill_between(x, lo.to_numpy(), hi.to_numpy(), color=line.get_color(), alpha=0.15, lw=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("heads ablated (% of all heads)")
    ax.set_ylabel("localization accuracy (%)")
    paper = t["paper_name"].iloc[0] if "paper_name" in t else ""
    ax.set_title(paper if isinstance(paper, str) and paper else model, fontsize=9)  # TSV: "" is NaN
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def head_ablation_figure(table: pd.DataFrame, auc: pd.DataFrame):
    """Fig. 5 / 15: per model, localization accuracy vs the share of heads zeroed, one line per
    setting with its normalized AUC in the legend; bands: 95% bootstrap interval, for random the
    mean over seeds with the seeds' min..max."""
    models = list(dict.fromkeys(table["model"])) if len(table) else []
    if not models:
        return _nothing("no head-ablation rows")
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        _ablation_panel(ax, table[table["model"] == model], auc, model)
    fig.tight_layout()
    return fig
