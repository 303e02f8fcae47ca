"""Appendix Fig. 6: examples of images with one object removed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..images import open_image  # noqa: E402


def object_removal_examples(
    samples: pd.DataFrame, removed: pd.DataFrame, n: int, out_png: str, seed: int = 0
):
    """Pairs of (original with the target's box, object-removed image) for ``n`` samples."""
    df = samples.merge(removed, on="sample_id")
    pick = df.sample(n=min(n, len(df)), random_state=seed) if len(df) else df
    cols = max(1, len(pick))
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 5.4), squeeze=False)
    for j, row in enumerate(pick.to_dict("records")):
        for i, path in enumerate((row["image_path"], row["removed_path"])):
            ax = axes[i][j]
            ax.imshow(open_image(path))
            ax.add_patch(
                plt.Rectangle(
                    (row["bbox_x"], row["bbox_y"]),
                    row["bbox_w"],
                    row["bbox_h"],
                    fill=False,
                    ec="yellow",
                    lw=1.5,
                )
            )
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][j].set_title(row["category"], fontsize=9)
    axes[0][0].set_ylabel("original")
    axes[1][0].set_ylabel("object removed")
    if not len(pick):
        axes[0][0].text(0.5, 0.5, "no samples", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    fig.savefig(Path(out_png).with_suffix(".pdf"))  # every figure also as PDF
    plt.close(fig)
