"""Training curves of the toy models."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def training_curves(
    history: pd.DataFrame, out_png, title: str = "", aux: str = "category, cell, box"
) -> None:
    """Training losses and held-out accuracy; ``aux``: what the auxiliary loss taught."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(history["step"], history["lm_loss"], label="answer tokens (CE)")
    ax1.plot(history["step"], history["aux_loss"], label=f"visual tokens (aux: {aux})")
    if "number_loss" in history and (history["number_loss"] > 0).any():
        ax1.plot(history["step"], history["number_loss"], label="box coordinates from the LLM (L1)")
    if "llm_position_loss" in history and (history["llm_position_loss"] > 0).any():
        ax1.plot(
            history["step"],
            history["llm_position_loss"],
            label="visual tokens' cell inside the LLM (MSE)",
        )
    if "stage" in history and (history["stage"] == "vision").any():
        end = history.loc[history["stage"] == "vision", "step"].max()
        for ax in (ax1, ax2):
            ax.axvline(end, color="grey", lw=0.8, ls="--")
        # x in data, y in axes fraction: the label stays at the top whatever the log scale does
        ax1.text(
            end,
            0.98,
            "vision stage | ",
            ha="right",
            va="top",
            fontsize=8,
            color="grey",
            transform=ax1.get_xaxis_transform(),
        )
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss")
    ax1.legend(fontsize=8, loc="upper right", bbox_to_anchor=(1, 0.9))  # below the stage label
    ev = history.dropna(subset=["loc_score"]) if "loc_score" in history else history.iloc[:0]
    for col, label in (
        ("success@0.5", "loc. success @ IoU 0.5"),
        ("loc_score", "loc. score"),
        ("cls_list", "classification (list)"),
    ):
        if col in ev:
            ax2.plot(ev["step"], 100 * ev[col], marker="o", label=label)
    ax2.set_ylim(0, 100)
    ax2.set_xlim(ax1.get_xlim())
    ax2.set_xlabel("step")
    ax2.set_ylabel("held-out accuracy (%)")
    ax2.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
