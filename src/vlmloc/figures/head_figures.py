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

from ..experiments.head_ranking import task_order, top_k
from ..tables.head_ablation import DEFAULT_VARIANT
from ..tables.mediation import TOP_SHARES, null_profile, top_share

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


def _sparsity_label(sparsity: pd.DataFrame | None, model: str, task: str, mf: np.ndarray) -> str:
    """The legend's line: the top 3 heads' share of |mean MF|, with its interval, the
    head-permutation null's share and the p-value where the sparsity table has them."""
    name = TASK_LABEL.get(task, task)
    if sparsity is not None and len(sparsity):
        r = sparsity[
            (sparsity["model"] == model)
            & (sparsity["task"] == task)
            & (sparsity["statistic"] == "mean")
        ]
        if len(r) and pd.notna(r["share_top3"].iloc[0]):
            r = r.iloc[0]
            return (
                f"{name}: top 3 carry {r['share_top3']:.0%} "
                f"[{r['share_top3_lo']:.0%}, {r['share_top3_hi']:.0%}]\n"
                f"  null {r['share_top3_null']:.0%}, p = {r['share_top3_p']:.2g}"
            )
    return f"{name}: top {TOP_SHARES[0]}% carry {top_share(mf, top_k(len(mf), TOP_SHARES[0])):.0%}"


def mediation_sparsity_figure(
    heads_by_model: dict[str, pd.DataFrame],
    pairs_by_model: dict[str, pd.DataFrame] | None = None,
    sparsity: pd.DataFrame | None = None,
    bootstrap: dict | None = None,
):
    """Per model: |mean MF| of every head, sorted descending (log-log), one line per task, and
    (dashed, with ``pairs_by_model``) the same curve under the head-permutation null (heads
    shuffled within every pair; mean over its draws). The legend gives the top 3 heads' share of
    the total |MF| with its interval, the null's share and the p-value (``sparsity``, the
    sparsity table); dotted: top 1/5/10%."""
    models = [m for m, h in heads_by_model.items() if len(h)]
    if not models:
        return _nothing("no head scores")
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 3.9), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        heads = heads_by_model[model]
        for task in task_order(heads["task"]):
            mf = heads.loc[heads["task"] == task, "mf_mean"].to_numpy(float)
            a = np.sort(np.abs(mf[np.isfinite(mf)]))[::-1]
            label = _sparsity_label(sparsity, model, task, mf)
            colour = TASK_COLOUR.get(task)
            ax.plot(np.arange(1, len(a) + 1), a, color=colour, lw=1.2, label=label)
            if pairs_by_model is not None and model in pairs_by_model:
                pm = pairs_by_model[model]
                null = null_profile(pm[pm["task"] == task], "mean", bootstrap)
                if len(null):
                    ax.plot(
                        np.arange(1, len(null) + 1),
                        null,
                        color=colour,
                        lw=1,
                        ls="--",
                        label=f"{TASK_LABEL.get(task, task)}: head-permutation null",
                    )
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
        ax.legend(fontsize=6.5, loc="lower left")
    fig.tight_layout()
    return fig


CONTROL_LABEL = {"lowest": "low-imp.", "random": "random"}
VARIANT_LABEL = {
    ("zero", "post_image"): "zeroed after the image (paper)",
    ("zero", "all"): "zeroed at every position",
    ("mean", "post_image"): "mean-ablated after the image",
    ("mean", "all"): "mean-ablated at every position",
}


def _with_variant(t: pd.DataFrame) -> pd.DataFrame:
    """Tables written before the ablation variants existed: the paper's zero after the image."""
    return t.assign(**{c: v for c, v in DEFAULT_VARIANT.items() if c not in t})


def _auc_label(
    auc: pd.DataFrame, contrasts: pd.DataFrame | None, model: str, variant, setting: str
) -> str:
    """`` (AUC a [lo, hi])`` and, for a critical ranking, its AUC differences from the controls
    with their paired intervals."""
    a = auc[
        (auc["model"] == model)
        & (auc["ablation"] == variant[0])
        & (auc["positions"] == variant[1])
        & (auc["setting"] == setting)
    ]
    a = a[a["seed"] == -1] if (a["seed"] == -1).any() else a
    if a.empty or pd.isna(a["auc"].iloc[0]):
        return ""
    r = a.iloc[0]
    text = f" (AUC {r['auc']:.2f}"
    if "auc_lo" in r and pd.notna(r["auc_lo"]):
        text += f" [{r['auc_lo']:.2f}, {r['auc_hi']:.2f}]"
    elif pd.notna(r["auc_std"]):
        text += f" ± {r['auc_std']:.2f}"
    text += ")"
    if contrasts is not None and len(contrasts):
        c = contrasts[
            (contrasts["model"] == model)
            & (contrasts["ablation"] == variant[0])
            & (contrasts["positions"] == variant[1])
            & (contrasts["setting"] == setting)
        ]
        parts = [
            f"{CONTROL_LABEL.get(x.versus, x.versus)} {x.delta_auc:+.2f} "
            f"[{x.delta_lo:+.2f}, {x.delta_hi:+.2f}]"
            for x in c.itertuples(index=False)
        ]
        if parts:
            text += "\n  ΔAUC vs " + ", ".join(parts)
    return text


def _curves(t: pd.DataFrame, setting: str, value: str):
    """One setting's curve: its line (the mean over seeds for random) and its band (95%
    interval over samples; random: the seeds' range)."""
    s = t[t["setting"] == setting]
    by_p = s.groupby("proportion")
    if s["seed"].nunique() > 1:  # seeds: their mean, and the band they span
        return by_p[value].mean(), by_p[value].min(), by_p[value].max()
    if value == "accuracy":
        return by_p[value].first(), by_p["acc_lo"].first(), by_p["acc_hi"].first()
    return by_p[value].first(), None, None


def _settings(t: pd.DataFrame) -> list[str]:
    known = [s for s in SETTING_STYLE if s in set(t["setting"])]
    return known + [s for s in dict.fromkeys(t["setting"]) if s not in SETTING_STYLE]


def _ablation_panel(ax, t, auc, contrasts, model: str, variant) -> None:
    for setting in _settings(t):
        label, colour = SETTING_STYLE.get(setting, (setting, None))
        y, lo, hi = _curves(t, setting, "accuracy")
        x = 100 * y.index.to_numpy(float)
        label += _auc_label(auc, contrasts, model, variant, setting)
        (line,) = ax.plot(x, y.to_numpy(), marker="o", ms=3, color=colour, label=label)
        ax.fill_between(x, lo.to_numpy(), hi.to_numpy(), color=line.get_color(), alpha=0.15, lw=0)
    ax.set_ylim(0, 118)  # room above the curves for the legend
    ax.set_ylabel("localization accuracy (%)")
    paper = t["paper_name"].iloc[0] if "paper_name" in t else ""
    name = paper if isinstance(paper, str) and paper else model  # TSV: "" is NaN
    ax.set_title(f"{name}: {VARIANT_LABEL.get(variant, '/'.join(variant))}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper right", framealpha=0.85)


def _format_panel(ax, t: pd.DataFrame) -> None:
    for setting in _settings(t):
        label, colour = SETTING_STYLE.get(setting, (setting, None))
        y, _, _ = _curves(t, setting, "format_broken")
        ax.plot(
            100 * y.index.to_numpy(float),
            y.to_numpy(),
            marker=".",
            ms=3,
            color=colour,
            lw=1,
            label=label,
        )
    ax.set_ylim(-3, 103)
    ax.set_xlabel("heads ablated (% of all heads)")
    ax.set_ylabel("out of format (%)", fontsize=8)
    ax.grid(alpha=0.3)


def head_ablation_figure(
    table: pd.DataFrame, auc: pd.DataFrame, contrasts: pd.DataFrame | None = None
):
    """Fig. 5 / 15: per model (columns) and ablation variant (rows: zero or mean, after the image
    or at every position), localization accuracy vs the share of heads ablated, one line per
    setting; bands: 95% bootstrap interval over samples, for random the mean over seeds with
    the seeds' min..max. Legend: normalized AUC with its interval and, for the critical
    rankings, AUC(critical) - AUC(control) with its paired interval. Below each accuracy panel
    (where the rows say): the share of answers not written in the family's format."""
    if not len(table):
        return _nothing("no head-ablation rows")
    table, auc = _with_variant(table), _with_variant(auc)
    contrasts = _with_variant(contrasts) if contrasts is not None else None
    models = list(dict.fromkeys(table["model"]))
    variants = list(
        dict.fromkeys(
            table.loc[table["setting"] != "baseline", ["ablation", "positions"]].itertuples(
                index=False, name=None
            )
        )
    )
    with_format = "format_broken" in table and table["format_broken"].notna().any()
    per = 2 if with_format else 1
    fig, axes = plt.subplots(
        per * len(variants),
        len(models),
        figsize=(5.6 * len(models), (5.4 if with_format else 4.2) * len(variants)),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1] * len(variants) if with_format else None},
    )
    for col, model in enumerate(models):
        for row, variant in enumerate(variants):
            t = table[
                (table["model"] == model)
                & (table["ablation"] == variant[0])
                & (table["positions"] == variant[1])
            ]
            ax = axes[per * row, col]
            if t.empty:
                ax.set_axis_off()
                if with_format:
                    axes[per * row + 1, col].set_axis_off()
                continue
            _ablation_panel(ax, t, auc, contrasts, model, variant)
            if with_format:
                _format_panel(axes[per * row + 1, col], t)
            else:
                ax.set_xlabel("heads ablated (% of all heads)")
    fig.tight_layout()
    return fig
