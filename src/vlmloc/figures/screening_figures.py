"""Baseline figures: accuracy per model (with Table 1 where published) and predicted boxes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..images import open_image  # noqa: E402

METRICS = [
    ("success@0.5", "IoU>0.5"),
    ("success@0.7", "IoU>0.7"),
    ("success@0.9", "IoU>0.9"),
    ("loc_score", "loc. score"),
    ("cls", "cls. (list)"),
]


def baseline_accuracy(table: pd.DataFrame, out_png, scope: str = "probing subset") -> None:
    """Grouped bars per model; the paper's baseline (Table 1) as black ticks where published.
    Falls back to all filtered samples when the probing subset is empty."""
    sel = table[table["samples"] == scope]
    if sel["n"].fillna(0).sum() == 0:
        scope, sel = "all filtered", table[table["samples"] == "all filtered"]
    models = list(sel["model"])
    fig, ax = plt.subplots(figsize=(1.6 + 1.9 * max(1, len(models)), 3.6))
    width = 0.8 / len(METRICS)
    x = np.arange(len(models))
    for k, (col, label) in enumerate(METRICS):
        vals = sel[col].to_numpy(dtype=float)
        ax.bar(x + (k - 2) * width, vals, width, label=label)  # NaN (unknown): no bar, not a 0% bar
    for i, row in enumerate(sel.to_dict("records")):
        for col, k in (("paper_loc", 3), ("paper_cls", 4)):
            if pd.notna(row.get(col)):
                ax.plot([i + (k - 2.4) * width, i + (k - 1.6) * width], [row[col]] * 2, "k-", lw=2)
    ax.set_xticks(
        x, [f"{m}\n(n={int(n)})" for m, n in zip(models, sel["n"].fillna(0), strict=True)]
    )
    ax.set_ylim(0, 122)  # headroom: the legend sits above the 100% line, not on the bars
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("accuracy (%)")
    ax.set_title(
        (
            "baseline on the probing subset"
            if scope == "probing subset"
            else "baseline on all filtered samples"
        )
        + (
            " (black: paper, Table 1)"
            if sel[["paper_loc", "paper_cls"]].notna().any().any()
            else ""
        )
    )
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    fig.savefig(Path(out_png).with_suffix(".pdf"))  # every figure also as PDF
    plt.close(fig)


COLOURS = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00"]


def localization_examples(
    samples: pd.DataFrame, answers: dict[str, pd.DataFrame], n: int, out_png, seed: int = 0
) -> None:
    """Ground-truth box (yellow, dashed) and each model's predicted box on ``n`` samples."""
    pick = samples.sample(n=min(n, len(samples)), random_state=seed) if len(samples) else samples
    cols = max(1, len(pick))
    fig, axes = plt.subplots(1, cols, figsize=(2.8 * cols, 3.2), squeeze=False)
    for j, row in enumerate(pick.to_dict("records")):
        ax = axes[0][j]
        ax.imshow(open_image(row["image_path"]))
        ax.add_patch(
            plt.Rectangle(
                (row["bbox_x"], row["bbox_y"]),
                row["bbox_w"],
                row["bbox_h"],
                fill=False,
                ec="yellow",
                lw=2,
                ls="--",
            )
        )
        for k, (model, ans) in enumerate(answers.items()):
            a = ans[
                (ans["sample_id"] == row["sample_id"])
                & (ans["condition"] == "original")
                & (ans["task"] == "localization")
            ]
            if len(a) and pd.notna(a.iloc[0]["pred_x1"]):
                p = a.iloc[0]
                ax.add_patch(
                    plt.Rectangle(
                        (p["pred_x1"], p["pred_y1"]),
                        p["pred_x2"] - p["pred_x1"],
                        p["pred_y2"] - p["pred_y1"],
                        fill=False,
                        ec=COLOURS[k % len(COLOURS)],
                        lw=1.5,
                        label=model,
                    )
                )
        ax.set_title(row["category"], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], color="yellow", ls="--", label="ground truth")]
    handles += [
        plt.Line2D([], [], color=COLOURS[k % len(COLOURS)], label=m) for k, m in enumerate(answers)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(out_png, dpi=110)
    fig.savefig(Path(out_png).with_suffix(".pdf"))  # every figure also as PDF
    plt.close(fig)
