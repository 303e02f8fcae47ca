"""Containerization and view ablation (paper Fig. 1 / 8, Fig. 9, Fig. 10)."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ..data.filtering import sample_mask  # noqa: E402
from ..images import open_image  # noqa: E402


def _save(fig, png: str, pdf: str):
    """Write the PNG and PDF, close the figure and return it (tests read its plotted data)."""
    fig.savefig(png, dpi=130)
    fig.savefig(pdf)
    plt.close(fig)
    return fig


def _nothing(png: str, pdf: str, text: str):
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.set_axis_off()
    return _save(fig, png, pdf)


def plot_fig1(cells: pd.DataFrame, metric: str, png: str, pdf: str):
    """One heatmap per model: rows = object padding p (0 = unmodified), columns = ground-truth
    box scaled by s; each cell the mean over seeds, with its 95% bootstrap interval over samples
    (the std over seeds is in the table); the diagonal framed."""
    models = list(dict.fromkeys(cells["model"])) if len(cells) else []
    if not models:
        return _nothing(png, pdf, "no containerization rows")
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        t = cells[cells["model"] == model]
        mean = t.pivot(index="padding", columns="scale", values="mean")
        lo = t.pivot(index="padding", columns="scale", values="lo")
        hi = t.pivot(index="padding", columns="scale", values="hi")
        im = ax.imshow(
            mean.to_numpy(),
            cmap="viridis",
            gid=f"cells:{model}",
            vmin=0,
            vmax=max(1.0, float(np.nanmax(mean.to_numpy()))),
        )
        for i, p in enumerate(mean.index):
            for j, s in enumerate(mean.columns):
                v = mean.loc[p, s]
                colour = "black" if v > 0.6 * im.get_clim()[1] else "white"
                ax.text(
                    j,
                    i,
                    f"{v:.1f}\n[{lo.loc[p, s]:.0f}, {hi.loc[p, s]:.0f}]",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=colour,
                )
                if p == s:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.5))
        ax.set_xticks(range(len(mean.columns)), [f"+{s}" if s else "0" for s in mean.columns])
        ax.set_yticks(range(len(mean.index)), [f"+{p}" if p else "0" for p in mean.index])
        ax.set_xlabel("ground-truth box scaled by s")
        ax.set_ylabel("object padding p")
        per_p = t.drop_duplicates("padding").set_index("padding")
        grown = [p for p in per_p.index if p]
        ax.set_title(
            f"{model}\npredicted box area x"
            + ", x".join(f"{per_p.loc[p, 'area_ratio']:.2f}" for p in grown)
            + "\n(box grown by p: x"
            + ", x".join(f"{per_p.loc[p, 'ideal_area_ratio']:.1f}" for p in grown)
            + ")",
            fontsize=8,
        )
        fig.colorbar(im, ax=ax, fraction=0.046, label=f"{metric} (%)")
    fig.tight_layout()
    return _save(fig, png, pdf)


def _box(ax, box, colour, style="-", label=None):
    x1, y1, x2, y2 = box
    ax.add_patch(
        Rectangle(
            (x1, y1),
            x2 - x1,
            y2 - y1,
            fill=False,
            ec=colour,
            ls=style,
            lw=2.2,
            label=label,
            path_effects=[patheffects.withStroke(linewidth=3.6, foreground="black")],
        )
    )


def plot_fig9(examples: pd.DataFrame, png: str, pdf: str):
    """Rows: p = 1, p = 2; columns: examples. Each: the image, the object's cells (yellow) and
    the ring (green) on the scale view, the true box (white) and the box grown by p (cyan,
    dashed), and the predicted box of the unmodified model (orange) and of the grown object (red)."""
    if examples.empty:
        return _nothing(png, pdf, "no examples")
    paddings = sorted(examples["padding"].unique())
    n = examples.groupby("padding").size().max()
    fig, axes = plt.subplots(
        len(paddings), n, figsize=(2.6 * n, 2.6 * len(paddings) + 0.6), squeeze=False
    )
    for ax in axes.ravel():
        ax.set_axis_off()
    for i, p in enumerate(paddings):
        for j, r in enumerate(examples[examples["padding"] == p].to_dict("records")):
            ax = axes[i, j]
            image = np.asarray(open_image(r["image_path"]))
            ax.imshow(image)
            geom = json.loads(r["ring_geometry"])
            for key, colour in (("object", "yellow"), ("ring", "lime")):
                for x0, y0, x1, y1 in geom[key]:
                    ax.add_patch(
                        Rectangle(
                            (x0, y0), x1 - x0, y1 - y0, fc=colour, ec=colour, lw=0.5, alpha=0.3
                        )
                    )
            _box(ax, r["gt_box_s0"], "white", label="true box")
            _box(ax, r[f"gt_box_s{int(p)}"], "cyan", "--", label="true box grown by p")
            for prefix, colour, style, label in (
                ("", "red", "-", "predicted, grown object"),
                ("base_", "darkorange", ":", "predicted, original"),
            ):
                box = [r[f"{prefix}pred_{k}"] for k in ("x1", "y1", "x2", "y2")]
                if not any(pd.isna(box)):
                    _box(ax, box, colour, style, label=label)
            mask = sample_mask(r)
            ax.contour(mask, levels=[0.5], colors="yellow", linewidths=0.6)
            ax.set_xlim(-0.5, image.shape[1] - 0.5)
            ax.set_ylim(image.shape[0] - 0.5, -0.5)
            ax.set_title(f"{r['model']}  p = {int(p)}\n{r['category']}", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(fig, png, pdf)


VIEW_COLOURS = {"global": "tab:blue", "local": "tab:orange", "both": "tab:gray"}


def plot_fig10(drops: pd.DataFrame, png: str, pdf: str):
    """Per model and task: the drop (points) per size bucket, one bar per ablated view with its 95%
    bootstrap interval over samples; the drops the paper's text states as black markers."""
    if drops.empty:
        return _nothing(png, pdf, "no model with local views ran the view ablation")
    models = list(dict.fromkeys(drops["model"]))
    tasks = [t for t in ("localization", "list") if t in set(drops["task"])]
    fig, axes = plt.subplots(
        len(models), len(tasks), figsize=(4.6 * len(tasks), 3.4 * len(models)), squeeze=False
    )
    buckets = [b for b in ("small", "medium", "large") if b in set(drops["size_bucket"])]
    views = [v for v in ("global", "local", "both") if v in set(drops["view"])]
    width = 0.8 / max(1, len(views))
    for i, model in enumerate(models):
        for j, task in enumerate(tasks):
            ax, t = axes[i, j], drops[(drops["model"] == model) & (drops["task"] == task)]
            for k, view in enumerate(views):
                v = t[t["view"] == view].set_index("size_bucket").reindex(buckets)
                x = np.arange(len(buckets)) + (k - (len(views) - 1) / 2) * width
                err = (
                    np.vstack([v["drop"] - v["drop_lo"], v["drop_hi"] - v["drop"]])
                    if "drop_lo" in v
                    else None
                )
                bars = ax.bar(
                    x,
                    v["drop"],
                    width,
                    yerr=err,
                    capsize=2,
                    error_kw={"lw": 0.8},
                    color=VIEW_COLOURS[view],
                    label=f"{view} view{'s' if view == 'both' else ''} ablated",
                )
                for patch in bars:  # gids: tests read the plotted heights back
                    patch.set_gid(f"drops:{model}:{task}:{view}")
                if bars.errorbar is not None:
                    bars.errorbar.lines[2][0].set_gid(f"errors:{model}:{task}:{view}")
                if v["paper_drop"].notna().any():
                    ax.scatter(
                        x,
                        v["paper_drop"],
                        color="black",
                        marker="_",
                        s=160,
                        lw=2.5,
                        zorder=3,
                        label="paper (text)",
                    )
            ax.axhline(0, color="black", lw=0.6)
            info = t.drop_duplicates("size_bucket").set_index("size_bucket").reindex(buckets)
            ax.set_xticks(
                range(len(buckets)),
                [
                    f"{b}\nn={n:.0f}, baseline {s:.0f}%"
                    for b, n, s in zip(buckets, info["n"], info["baseline"], strict=True)
                ],
                fontsize=8,
            )
            ax.set_ylabel("change from baseline (points)")
            ax.set_title(f"{model}: {'classification' if task == 'list' else task}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
    labels = {}
    for ax in axes.ravel():
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labels.setdefault(label, h)
    fig.legend(
        list(labels.values()), list(labels), loc="lower center", ncol=4, fontsize=8, frameon=False
    )
    fig.tight_layout(rect=(0, 0.08 if len(models) == 1 else 0.04, 1, 1))
    return _save(fig, png, pdf)
