"""Positional probes (paper Fig. 2 and app. Fig. 11), and the probe methods side by side. Each
function saves its figure and returns it (its lines' data are the tables' numbers: tested)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ..tables.probes import (
    ACCURACIES,
    best_llm_layers,
    cell_grid,
    fig11_sites,
    layer_curves,
    random_control_accuracy,
    untrained_method,
)

ACC_LABEL = {
    "acc_mean": "position accuracy (mean of row and column)",
    "acc_both": "position accuracy (row and column right)",
}
UNTRAINED_LABEL = "untrained (re-initialised)"
METHOD_LABEL = {
    "sgd": "SGD, cross-entropy (paper)",
    "lda": "LDA, one pass",
    "ridge": "least squares, one pass",
}


def _save(fig, png: str, pdf: str):
    fig.savefig(png, dpi=130)
    fig.savefig(pdf)
    plt.close(fig)
    return fig


def stage_axis(curves: pd.DataFrame) -> tuple[dict[str, float], dict]:
    """x position of every site (backbone layers, a gap, P, a gap, LLM layers) shared by every
    model, and the ticks: the paper's one axis for the three stages."""
    n_vision = (
        int(curves.loc[curves["stage"] == "vision", "layer"].max() + 1)
        if (curves["stage"] == "vision").any()
        else 0
    )
    n_llm = int(curves.loc[curves["stage"] == "llm", "layer"].max() + 1)
    p = n_vision + 1 if n_vision else 0
    x = {f"vision.{i}": float(i) for i in range(n_vision)} | {"projector": float(p)}
    x |= {f"llm.{i}": float(p + 2 + i) for i in range(n_llm)}
    step_v, step_l = max(1, n_vision // 6), max(1, n_llm // 8)
    ticks = {x[f"vision.{i}"]: str(i) for i in range(0, n_vision, step_v)} | {float(p): "P"}
    ticks |= {x[f"llm.{i}"]: str(i) for i in range(0, n_llm, step_l)}
    bounds = {"vision": (0, n_vision - 1), "projector": (p, p), "llm": (p + 2, p + 1 + n_llm)}
    return x, {"ticks": ticks, "bounds": bounds, "n_vision": n_vision}


def _stage_labels(ax, axis) -> None:
    lo, hi = axis["bounds"]["vision"]
    p = axis["bounds"]["projector"][0]
    l_lo, l_hi = axis["bounds"]["llm"]
    if axis["n_vision"]:
        ax.axvspan(lo - 0.5, hi + 0.5, color="0.93", zorder=0)
        ax.text(
            (lo + hi) / 2,
            1.01,
            "vision backbone",
            transform=ax.get_xaxis_transform(),
            ha="center",
            fontsize=8,
        )
    ax.axvspan(l_lo - 0.5, l_hi + 0.5, color="0.96", zorder=0)
    ax.text(
        (l_lo + l_hi) / 2, 1.01, "LLM", transform=ax.get_xaxis_transform(), ha="center", fontsize=8
    )
    ax.text(p, 1.01, "P", transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
    ax.set_xticks(list(axis["ticks"]), list(axis["ticks"].values()), fontsize=7)
    ax.set_xlabel("layer")


def _layer_panel(ax, summary: pd.DataFrame, method: str, accuracy: str, models: list[str]) -> None:
    curves = layer_curves(summary, method, accuracy)
    x, axis = stage_axis(curves)
    rnd = random_control_accuracy(summary, method, accuracy)
    best = best_llm_layers(summary, method, accuracy)
    for i, model in enumerate(models):
        c = curves[curves["model"] == model]
        colour = f"C{i}"
        for stage in ("vision", "projector", "llm"):  # no line across the gaps between stages
            s = c[c["stage"] == stage]
            if s.empty:
                continue
            xs = s["site"].map(x)
            ax.plot(
                xs,
                s["acc"],
                "-o",
                color=colour,
                ms=2.5,
                lw=1.3,
                label=model if stage == "llm" else None,
            )
            if s["acc_lo"].notna().any():  # 95% bootstrap interval over the test images
                ax.fill_between(
                    xs,
                    s["acc_lo"],
                    s["acc_hi"],
                    color=colour,
                    alpha=0.2,
                    lw=0,
                    gid=f"interval:{model}:{stage}",
                )
            # chance per grid (InternVL's backbone grid is twice as fine as P's and the LLM's)
            ax.plot(
                [xs.min() - 0.45, xs.max() + 0.45],
                [s["chance"].iloc[0]] * 2,
                "-",
                color=colour,
                lw=0.6,
                alpha=0.45,
            )
            if s["acc_shuffled"].notna().any():
                ax.plot(xs, s["acc_shuffled"], ":", marker=".", ms=3, color=colour, lw=1.1)
            if s["acc_untrained"].notna().any():  # the same probes on the re-initialised model
                ax.plot(
                    xs,
                    s["acc_untrained"],
                    "--",
                    color=colour,
                    lw=1.1,
                    alpha=0.8,
                    gid=f"untrained:{model}:{stage}",
                )
        if model in rnd.index:
            lo, hi = axis["bounds"]["projector"][0], axis["bounds"]["llm"][1]
            ax.plot([lo, hi], [rnd[model]] * 2, "-.", color=colour, lw=0.9)
        b = c[c["site"] == f"llm.{best[model]}"].iloc[0]
        ax.scatter(
            [x[b["site"]]], [b["acc"]], s=140, facecolors="none", edgecolors="red", lw=1.6, zorder=5
        )
        ax.annotate(
            f"{best[model]}",
            (x[b["site"]], b["acc"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=7,
            color="red",
        )
    _stage_labels(ax, axis)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ACC_LABEL[accuracy])


def untrained_label(summary: pd.DataFrame, method: str) -> str:
    """The untrained control's label, naming its method where it is not ``method`` (the demo runs
    the control with LDA only)."""
    um = untrained_method(summary, method)
    return UNTRAINED_LABEL if um == method else f"{UNTRAINED_LABEL}, {METHOD_LABEL[um]}"


def _legend_handles(summary: pd.DataFrame, method: str = "sgd") -> list:
    """The line styles' legend, the controls only where they ran."""
    shuffled, random = (
        (summary["variant"] == "shuffled").any(),
        (summary["stage"] == "control").any(),
    )
    untrained = untrained_method(summary, method) is not None
    handles = [
        Line2D([], [], color="0.3", marker="o", ms=3, label="probe on true positions"),
        Line2D([], [], color="0.3", lw=0.6, alpha=0.45, label="chance (per grid)"),
    ]
    if untrained:
        handles.append(Line2D([], [], color="0.3", ls="--", label=untrained_label(summary, method)))
    if shuffled:
        handles.append(
            Line2D([], [], color="0.3", ls=":", label="control: trained on shuffled positions")
        )
    if random:
        handles.append(Line2D([], [], color="0.3", ls="-.", label="control: random features"))
    return handles + [
        Line2D([], [], ls="", marker="o", mfc="none", mec="red", ms=9, label="best LLM layer")
    ]


def _heatmap(ax, grid: np.ndarray, title: str):
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1)
    if max(grid.shape) <= 8:  # small grids (the toys'): the values too
        for (r, c), v in np.ndenumerate(grid):
            ax.text(
                c,
                r,
                f"{v:.2f}"[1:] if v < 1 else "1",
                ha="center",
                va="center",
                fontsize=5,
                color="black" if v > 0.6 else "white",
            )
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _kinds(cells: pd.DataFrame, model: str, method: str, site: str) -> list[str]:
    c = cells[(cells["model"] == model) & (cells["method"] == method) & (cells["site"] == site)]
    return [k for k in ("global", "local") if (c["kind"] == k).any()]


def plot_fig2(
    summary: pd.DataFrame,
    cells: pd.DataFrame,
    models: list[str],
    method: str,
    accuracy: str,
    png: str,
    pdf: str,
):
    """Left: accuracy per layer across backbone, projector (P) and LLM on the test images, one
    line per model, its best LLM layer (chosen on the validation images) circled in red, the
    same probes on the untrained (re-initialised) model dashed, the two chance-level controls
    dotted. Right: the accuracy of each grid
    position at each model's best LLM layer (InternVL: thumbnail and tiles apart)."""
    if accuracy not in ACCURACIES:
        raise ValueError(f"accuracy must be one of {ACCURACIES}")
    best = best_llm_layers(summary, method, accuracy)
    maps = [(m, k) for m in models for k in _kinds(cells, m, method, f"llm.{best[m]}")]
    fig = plt.figure(figsize=(6.6 + 2.0 * len(maps), 4.6))
    grid = fig.add_gridspec(1, 1 + len(maps), width_ratios=[3.2] + [1] * len(maps), wspace=0.25)
    ax = fig.add_subplot(grid[0, 0])
    _layer_panel(ax, summary, method, accuracy, models)
    ax.legend(
        handles=ax.get_legend_handles_labels()[0] + _legend_handles(summary, method),
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=3,
        frameon=False,
    )
    ax.set_title(f"Fig 2 (left): probes per layer ({METHOD_LABEL[method]})", fontsize=9, pad=14)
    for j, (model, kind) in enumerate(maps):
        site = f"llm.{best[model]}"
        g = cell_grid(cells, model, method, site, kind, accuracy)
        view = (
            ""
            if kind == "global" and len(_kinds(cells, model, method, site)) == 1
            else f", {kind} view"
        )
        hax = fig.add_subplot(grid[0, 1 + j])
        im = _heatmap(hax, g, f"{model}{view}\nLLM layer {best[model]} (mean {np.nanmean(g):.2f})")
        if j == len(maps) - 1:
            fig.colorbar(
                im, cax=hax.inset_axes([1.06, 0.0, 0.07, 1.0]), label="accuracy per position"
            )
    fig.subplots_adjust(left=0.06, right=0.93, bottom=0.27, top=0.88)
    return _save(fig, png, pdf)


def fig11_means(
    cells: pd.DataFrame,
    model: str,
    method: str,
    kind: str,
    sites: list[str],
    accuracy: str,
    variant: str = "true",
) -> list[float]:
    """The mean over grid positions at each of ``sites`` (the number in each Fig 11 panel's
    title), of the trained model's probes or of ``variant`` "untrained" (NaN without its rows)."""
    out = []
    for site in sites:
        try:
            out.append(
                float(np.nanmean(cell_grid(cells, model, method, site, kind, accuracy, variant)))
            )
        except ValueError:
            out.append(np.nan)
    return out


def plot_fig11(
    summary: pd.DataFrame,
    cells: pd.DataFrame,
    models: list[str],
    method: str,
    accuracy: str,
    layers: dict[str, list[int]],
    png: str,
    pdf: str,
):
    """App. Fig. 11: per-position accuracy at the projector and selected LLM layers, a row per
    model (and per kind of view: InternVL's thumbnail and tiles); where the untrained control
    ran, a last panel per row draws the mean over positions at those sites, trained (solid) and
    untrained (re-initialised, dashed)."""
    rows = []
    for model in models:
        sites = fig11_sites(summary, model, method, accuracy, layers.get(model))
        rows += [(model, kind, sites) for kind in _kinds(cells, model, method, "projector")]
    um = untrained_method(summary, method)
    untrained = (
        um is not None and ((cells["variant"] == "untrained") & (cells["method"] == um)).any()
    )
    n_maps = max(len(r[2]) for r in rows)
    n_cols = n_maps + int(untrained)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(1.9 * n_cols + 0.8, 2.05 * len(rows)), squeeze=False
    )
    im = None
    for i, (model, kind, sites) in enumerate(rows):
        for j, ax in enumerate(axes[i, :n_maps]):
            if j >= len(sites):
                ax.set_axis_off()
                continue
            g = cell_grid(cells, model, method, sites[j], kind, accuracy)
            name = "P" if sites[j] == "projector" else f"LLM {sites[j].split('.')[1]}"
            im = _heatmap(ax, g, f"{name} ({np.nanmean(g):.2f})")
        several = sum(r[0] == model for r in rows) > 1
        axes[i, 0].set_ylabel(f"{model}\n{kind} view" if several else model, fontsize=8)
        if untrained:
            ax = axes[i, -1]
            names = ["P" if s == "projector" else s.split(".")[1] for s in sites]
            ax.plot(
                names,
                fig11_means(cells, model, method, kind, sites, accuracy),
                "-o",
                ms=3,
                color="C0",
                label="trained",
                gid=f"trained:{model}:{kind}",
            )
            ax.plot(
                names,
                fig11_means(cells, model, um, kind, sites, accuracy, "untrained"),
                "--o",
                ms=3,
                color="0.4",
                label=untrained_label(summary, method),
                gid=f"untrained:{model}:{kind}",
            )
            ax.set_ylim(0, 1.05)
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_title("mean of each panel", fontsize=8)
            if i == len(rows) - 1:
                ax.legend(
                    fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False
                )
    fig.colorbar(im, ax=axes[:, :n_maps], shrink=0.8, label=f"{ACC_LABEL[accuracy]} per position")
    fig.suptitle(
        f"Fig 11: positional decoding at selected stages ({METHOD_LABEL[method]})", fontsize=9
    )
    return _save(fig, png, pdf)


def plot_methods(
    summary: pd.DataFrame, models: list[str], methods: list[str], accuracy: str, png: str, pdf: str
):
    """Accuracy per layer of each probe method, a panel per model (the comparison of the paper's
    SGD probes with the one-pass closed forms)."""
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        s = summary[summary["model"] == model]
        for k, method in enumerate(methods):
            c = layer_curves(s, method, accuracy)
            x, axis = stage_axis(c)
            for stage in ("vision", "projector", "llm"):
                t = c[c["stage"] == stage]
                ax.plot(
                    t["site"].map(x),
                    t["acc"],
                    "-o",
                    color=f"C{k + 3}",
                    ms=2.5,
                    lw=1.2,
                    label=METHOD_LABEL[method] if stage == "llm" else None,
                )
        _stage_labels(ax, axis)
        ax.set_ylim(0, 1.05)
        ax.set_title(model, fontsize=9, pad=14)
        ax.set_ylabel(ACC_LABEL[accuracy], fontsize=8)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _save(fig, png, pdf)
