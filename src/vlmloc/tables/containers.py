"""Tables of the containerization experiments (paper Fig. 1 / 8 and Table 2), from scored rows.

Fig. 1's cells: every localization answer of the grown object (padding p, one seed) is scored
against the ground-truth box grown by s token layers (the raw rows carry those boxes,
``gt_box_s<s>``), for every (p, s); a cell is the mean over seeds of the mean over samples, with
the std over seeds. p = 0 is the unmodified model (one run, std 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..defaults import with_defaults
from ..paper import TABLE2
from ..scoring import EXCLUDED
from ..tasks import iou, localization_scores
from .accuracy import SHORT, bootstrap_ci, summarize_groups, with_drops

CELL_COLUMNS = [
    "padding",
    "scale",
    "mean",
    "lo",
    "hi",
    "std",
    "n_seeds",
    "n",
    "area_ratio",
    "ideal_area_ratio",
]


def scales_of(rows: pd.DataFrame) -> list[int]:
    return sorted(int(c.removeprefix("gt_box_s")) for c in rows.columns if c.startswith("gt_box_s"))


def rescore(rows: pd.DataFrame, scale: int, metric: str = "loc_score") -> np.ndarray:
    """Each localization row's ``metric`` (a localization score, %) against the box grown by ``scale``."""
    out = []
    for r in rows.to_dict("records"):
        pred = (r["pred_x1"], r["pred_y1"], r["pred_x2"], r["pred_y2"])
        value = None if any(pd.isna(v) for v in pred) else iou(pred, tuple(r[f"gt_box_s{scale}"]))
        out.append(100 * localization_scores(value)[metric])
    return np.array(out, dtype=float)


def _area(x1, y1, x2, y2):
    return np.clip(np.asarray(x2, float) - x1, 0, None) * np.clip(
        np.asarray(y2, float) - y1, 0, None
    )


def area_ratios(rows: pd.DataFrame) -> dict[int, tuple[float, float]]:
    """Per padding p: the median over (sample, seed) of the predicted box's area over the
    unmodified model's predicted box area for the same sample, and the median of the s = p box's
    area over the true box's area (what a perfect container would give)."""
    pred = _area(rows["pred_x1"], rows["pred_y1"], rows["pred_x2"], rows["pred_y2"])
    base = pd.Series(pred, index=rows.index)[rows["padding"] == 0]
    base = dict(zip(rows.loc[base.index, "sample_id"], base, strict=True))
    out = {}
    for p, g in rows.groupby("padding"):
        ratio = pred[g.index.to_numpy()] / g["sample_id"].map(base).to_numpy(dtype=float)
        box = "gt_box_s0" if f"gt_box_s{int(p)}" not in g else f"gt_box_s{int(p)}"
        ideal = [_area(*b) / _area(*b0) for b, b0 in zip(g[box], g["gt_box_s0"], strict=True)]
        out[int(p)] = (
            float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else np.nan,
            float(np.median(ideal)),
        )
    return out


def containerization_cells(
    rows: pd.DataFrame, metric: str = "loc_score", bootstrap: dict | None = None
) -> pd.DataFrame:
    """One row per (padding p, scale s): mean and std over seeds of the metric, in %, its 95%
    bootstrap interval over samples (each sample's mean over seeds; ``bootstrap``: resamples,
    level, seed) and the predicted box's growth (``area_ratios``)."""
    rows = rows[(rows["task"] == "localization") & (rows["condition"] != EXCLUDED)]
    if rows.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    boot = with_defaults("bootstrap", bootstrap)
    ratios = area_ratios(rows)
    out = []
    for s in scales_of(rows):
        scored = rows.assign(value=rescore(rows, s, metric), seed=rows["seed"].fillna(-1))
        per_seed = scored.groupby(["padding", "seed"])["value"].mean()
        per_sample = scored.groupby(["padding", "sample_id"])["value"].mean()
        for p, g in per_seed.groupby(level="padding"):
            samples = per_sample.loc[p].to_numpy()
            lo, hi = bootstrap_ci(samples, boot["resamples"], boot["level"], boot["seed"])
            out.append(
                {
                    "padding": int(p),
                    "scale": s,
                    "mean": float(g.mean()),
                    "lo": lo,
                    "hi": hi,
                    "std": float(g.std(ddof=0)),
                    "n_seeds": len(g),
                    "n": len(samples),
                    "area_ratio": ratios[int(p)][0],
                    "ideal_area_ratio": ratios[int(p)][1],
                }
            )
    return (
        pd.DataFrame(out, columns=CELL_COLUMNS)
        .sort_values(["padding", "scale"])
        .reset_index(drop=True)
    )


MODE_ORDER = ("baseline", "full", "object")
SHUFFLE_COLUMNS = [
    "model",
    "mode",
    "n",
    *[f"{t}{x}" for t in SHORT.values() for x in ("", "_std", "_lo", "_hi", "_drop")],
    "paper_loc",
    "paper_loc_std",
    "paper_loc_drop",
    "paper_cls",
    "paper_cls_std",
    "paper_cls_drop",
]


def table2(
    rows_per_model: dict[str, pd.DataFrame],
    paper_names: dict[str, str],
    bootstrap: dict | None = None,
) -> pd.DataFrame:
    """Table 2: per model and shuffle mode, accuracy % (mean over seeds), its std over seeds and
    bootstrap interval, the drop from baseline, beside the paper's."""
    parts = []
    for model, rows in rows_per_model.items():
        if rows.empty:
            continue
        t = with_drops(
            summarize_groups(rows.assign(strategy=rows["mode"]), ["mode", "strategy"], bootstrap)
        )
        t = (
            t.set_index("mode")
            .reindex([m for m in MODE_ORDER if m in set(t["mode"])])
            .reset_index()
        )
        t.insert(0, "model", model)
        paper = TABLE2.get(paper_names.get(model, ""), {})
        for short in SHORT.values():
            t[f"paper_{short}"] = [paper.get(m, {}).get(short, np.nan) for m in t["mode"]]
            t[f"paper_{short}_std"] = [
                paper.get(m, {}).get(f"{short}_std", np.nan) for m in t["mode"]
            ]
            t[f"paper_{short}_drop"] = t[f"paper_{short}"] - paper.get("baseline", {}).get(
                short, np.nan
            )
        parts.append(t)
    return (
        pd.concat(parts, ignore_index=True).reindex(columns=SHUFFLE_COLUMNS)
        if parts
        else pd.DataFrame(columns=SHUFFLE_COLUMNS)
    )


def format_table2(table: pd.DataFrame, models: list[str]) -> str:
    """Markdown in the paper's layout: per task, a row per mode, a column per model."""
    lines = ["| mode | " + " | ".join(models) + " |", "|" + "---|" * (1 + len(models))]
    for task, short in SHORT.items():
        lines.append(
            f"| *{'Localization' if task == 'localization' else 'Classification'}* |"
            + " |" * len(models)
        )
        for mode in MODE_ORDER:
            cells = []
            for m in models:
                r = table[(table["model"] == m) & (table["mode"] == mode)]
                if r.empty:
                    cells.append("")
                    continue
                r = r.iloc[0]
                std = f" ± {r[f'{short}_std']:.1f}" if not pd.isna(r[f"{short}_std"]) else ""
                d = r[f"{short}_drop"]
                drop = "" if mode == "baseline" else f" {'↓' if d < 0 else '↑'}{abs(d):.1f}"
                cells.append(f"{r[short]:.1f}{std}{drop}")
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def fig9_examples(
    rows_per_model: dict[str, pd.DataFrame], samples: pd.DataFrame, n: int
) -> pd.DataFrame:
    """Fig. 9's examples: per model and padding, the first seed's answers on the ``n`` samples the
    unmodified model localizes best (highest IoU; chosen before looking at the grown answers),
    with that model's box (``base_pred_*``) beside the grown object's."""
    out = []
    cols = ["pred_x1", "pred_y1", "pred_x2", "pred_y2"]
    info = samples.set_index("sample_id")[["image_path", "category", "width", "height", "mask_rle"]]
    for model, rows in rows_per_model.items():
        rows = rows[(rows["task"] == "localization") & (rows["condition"] != EXCLUDED)]
        if rows.empty:  # an empty probing subset: the rows have no parameter columns either
            continue
        base = rows[rows["padding"] == 0].set_index("sample_id")
        best = base["iou"].dropna().sort_values(ascending=False, kind="stable").index[:n]
        grown = rows[(rows["padding"] > 0) & rows["ring_geometry"].notna()]
        for _, r in grown[grown["sample_id"].isin(best)].iterrows():
            b = base.loc[r["sample_id"]]
            out.append(
                {
                    "model": model,
                    **r.to_dict(),
                    **{f"base_{c}": b[c] for c in cols},
                    **info.loc[r["sample_id"]].to_dict(),
                }
            )
    t = pd.DataFrame(out)
    return t.sort_values(["padding", "model", "sample_id"]).reset_index(drop=True) if len(t) else t
