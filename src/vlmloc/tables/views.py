"""Tables of the single-view ablation (paper Table 3 and appendix Fig. 10), from scored rows.

Token % is the share of THAT kind of view's tokens replaced (global: of the thumbnail's, local:
of the tiles', both: of all), as the paper's Table 3 gives it. Samples the experiment excluded
(a single view) are not in any number; ``n`` counts the samples that remain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..defaults import with_defaults
from ..paper import FIG10_TEXT, TABLE3
from ..scoring import EXCLUDED
from .accuracy import METRIC, SHORT, bootstrap_ci, summarize_groups, with_drops

VIEW_ORDER = ("none", "local", "global", "both")
TABLE3_COLUMNS = [
    "model",
    "view",
    "padding",
    "token_pct",
    "n",
    "n_excluded",
    *[f"{t}{x}" for t in SHORT.values() for x in ("", "_lo", "_hi", "_drop")],
    "paper_token",
    "paper_loc",
    "paper_loc_drop",
    "paper_cls",
    "paper_cls_drop",
]
BUCKETS = ("small", "medium", "large")


def table3(
    rows_per_model: dict[str, pd.DataFrame],
    paper_names: dict[str, str],
    bootstrap: dict | None = None,
) -> pd.DataFrame:
    parts = []
    for model, rows in rows_per_model.items():
        n_excluded = int((rows["condition"] == EXCLUDED).sum())
        rows = rows[rows["condition"] != EXCLUDED]
        if rows.empty:
            continue
        strategy = np.where(rows["view"] == "none", "baseline", "ablation")
        t = with_drops(
            summarize_groups(
                rows.assign(strategy=strategy), ["view", "padding", "strategy"], bootstrap
            )
        )
        share = {
            "none": "token_pct",
            "both": "token_pct",
            "global": "token_pct_global",
            "local": "token_pct_local",
        }
        t["token_pct"] = [r[share[r["view"]]] for _, r in t.iterrows()]
        t["n_excluded"] = n_excluded
        t["_o"] = t["view"].map({v: i for i, v in enumerate(VIEW_ORDER)})
        t = t.sort_values(["_o", "padding"]).drop(columns="_o")
        t.insert(0, "model", model)
        paper = TABLE3.get(paper_names.get(model, ""), {})
        keys = list(zip(t["view"], t["padding"].astype(int), strict=True))
        t["paper_token"] = [paper.get(k, {}).get("token", np.nan) for k in keys]
        for short in SHORT.values():
            t[f"paper_{short}"] = [paper.get(k, {}).get(short, np.nan) for k in keys]
            t[f"paper_{short}_drop"] = t[f"paper_{short}"] - paper.get(("none", 0), {}).get(
                short, np.nan
            )
        parts.append(t)
    return (
        pd.concat(parts, ignore_index=True).reindex(columns=TABLE3_COLUMNS)
        if parts
        else pd.DataFrame(columns=TABLE3_COLUMNS)
    )


def format_table3(table: pd.DataFrame) -> str:
    """Markdown in the paper's layout, one block per model."""
    lines = []
    for model, t in table.groupby("model", sort=False):
        lines += [
            f"**{model}** ({int(t['n'].max())} samples with local views, {int(t['n_excluded'].iloc[0])} single-view excluded)",
            "",
            "| view | strategy | token % | loc. | cls. | paper token % | paper loc. | paper cls. |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for _, r in t.iterrows():
            label = (
                "baseline"
                if r["view"] == "none"
                else ("object" if r["padding"] == 0 else f"{int(r['padding']):+d} padding")
            )
            cells = []
            for short in SHORT.values():
                drop = (
                    ""
                    if r["view"] == "none"
                    else f" {'↓' if r[f'{short}_drop'] < 0 else '↑'}{abs(r[f'{short}_drop']):.1f}"
                )
                cells.append(f"{r[short]:.1f}{drop}")
            paper = [
                "" if pd.isna(r[c]) else f"{r[c]:g}"
                for c in ("paper_token", "paper_loc", "paper_cls")
            ]
            lines.append(
                f"| {'' if r['view'] == 'none' else r['view']} | {label} | {r['token_pct']:.0f} | "
                + " | ".join(cells + paper)
                + " |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


FIG10_COLUMNS = [
    "model",
    "task",
    "view",
    "padding",
    "size_bucket",
    "n",
    "baseline",
    "score",
    "drop",
    "drop_lo",
    "drop_hi",
    "paper_drop",
]


def size_drops(
    rows_per_model: dict[str, pd.DataFrame],
    paper_names: dict[str, str],
    padding: int = 0,
    bootstrap: dict | None = None,
) -> pd.DataFrame:
    """Fig. 10: per model, task, view and COCO size bucket, the drop from baseline (points) and its
    95% bootstrap interval over samples (each sample's change from its own baseline answer)."""
    b = with_defaults("bootstrap", bootstrap)
    out = []
    for model, rows in rows_per_model.items():
        rows = rows[(rows["condition"] != EXCLUDED) & rows["task"].isin(list(METRIC))]
        if rows.empty:
            continue
        rows = rows.assign(
            score=100 * rows.apply(lambda r: r[METRIC[r["task"]]], axis=1).astype(float)
        )
        paper = FIG10_TEXT.get(paper_names.get(model, ""), {})
        for (task, bucket), g in rows.groupby(["task", "size_bucket"]):
            base_rows = g.loc[g["view"] == "none"].groupby("sample_id")["score"].mean()
            base = base_rows.mean()
            for view in VIEW_ORDER[1:]:
                c = g[(g["view"] == view) & (g["padding"] == padding)]
                if c.empty:
                    continue
                change = c.groupby("sample_id")["score"].mean() - base_rows
                lo, hi = bootstrap_ci(
                    change.dropna().to_numpy(), b["resamples"], b["level"], b["seed"]
                )
                out.append(
                    {
                        "model": model,
                        "task": task,
                        "view": view,
                        "padding": padding,
                        "size_bucket": bucket,
                        "n": c["sample_id"].nunique(),
                        "baseline": base,
                        "score": c["score"].mean(),
                        "drop": c["score"].mean() - base,
                        "drop_lo": lo,
                        "drop_hi": hi,
                        "paper_drop": paper.get((view, bucket, task), np.nan),
                    }
                )
    t = pd.DataFrame(out, columns=FIG10_COLUMNS)
    if len(t):
        t["_b"] = t["size_bucket"].map({b: i for i, b in enumerate(BUCKETS)})
        t = t.sort_values(["model", "task", "view", "_b"]).drop(columns="_b").reset_index(drop=True)
    return t
