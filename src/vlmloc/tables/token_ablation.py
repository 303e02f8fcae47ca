"""Tables of the token-ablation experiments (paper Table 1, 4, 5), computed from scored rows.

Scores per sample: the localization score (mean success at IoU 0.5/0.7/0.9) for the box task,
"identified" for the list task, in %. Every cell has a 95% percentile-bootstrap interval over
samples (the paper gives none); random strategies average each sample over the seeds first and
also report the std over seeds (Table 4). Token shares are the mean over samples of the share of
image tokens edited, in all and per kind of view (global / local: InternVL's "(g, l)").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..paper import TABLE1, TABLE1_TOKENS, TABLE4, TABLE5
from .accuracy import SHORT, STATS, summarize_groups, with_drops

STRATEGY_ORDER = ("baseline", "object", "ig", "random", "register")
STRATEGY_COLUMNS = [
    "strategy",
    "param",
    "token_pct",
    "token_pct_global",
    "token_pct_local",
    "n_edited",
    "n",
    *STATS,
    *[f"{t}_ig_gap_{x}" for t in SHORT.values() for x in ("median", "p90", "n_excluded")],
]
TABLE1_COLUMNS = [
    "model",
    *STRATEGY_COLUMNS,
    "paper_token",
    "paper_loc",
    "paper_loc_drop",
    "paper_cls",
    "paper_cls_drop",
]
TABLE5_COLUMNS = ["model", *[c for c in STRATEGY_COLUMNS if c != "param"], "paper_loc", "paper_cls"]


def _param(row: pd.Series) -> float:
    if row["strategy"] == "object":
        return row.get("padding", np.nan)
    return row.get("k", np.nan)


def strategy_table(rows: pd.DataFrame, bootstrap: dict | None = None) -> pd.DataFrame:
    """One row per (strategy, param) of one model's scored rows: token shares and, per task,
    accuracy %, its bootstrap interval, the drop from baseline, and the std over seeds."""
    if rows.empty:
        return pd.DataFrame(columns=STRATEGY_COLUMNS)
    rows = rows.copy()
    rows["param"] = rows.apply(_param, axis=1)
    out = with_drops(summarize_groups(rows, ["strategy", "param"], bootstrap))
    order = {s: i for i, s in enumerate(STRATEGY_ORDER)}
    out["_o"] = out["strategy"].map(order).fillna(len(order))
    return (
        out.sort_values(["_o", "param"])
        .drop(columns="_o")
        .reset_index(drop=True)
        .reindex(columns=STRATEGY_COLUMNS)
    )


def _paper_token(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, tuple):
        return "(" + ",".join(f"{v:g}" for v in value) + ")"
    return f"{value:g}"


def table1(
    rows_per_model: dict[str, pd.DataFrame],
    paper_names: dict[str, str],
    bootstrap: dict | None = None,
) -> pd.DataFrame:
    """Table 1 (and its Table 4 random rows with the std over seeds), with the paper's values
    beside ours where the model is one of the paper's."""
    parts = []
    for model, rows in rows_per_model.items():
        t = strategy_table(rows, bootstrap)
        if t.empty:
            continue
        t.insert(0, "model", model)
        paper = TABLE1.get(paper_names.get(model, ""), {})
        tokens = TABLE1_TOKENS.get(paper_names.get(model, ""), {})
        keys = [
            (
                s,
                None
                if pd.isna(p) or s in ("baseline", "register")
                else (int(p) if s == "object" else p),
            )
            for s, p in zip(t["strategy"], t["param"], strict=True)
        ]
        t["paper_token"] = [_paper_token(tokens.get(k)) for k in keys]
        base = paper.get(("baseline", None), {})
        for short in SHORT.values():
            t[f"paper_{short}"] = [paper.get(k, {}).get(short, np.nan) for k in keys]
            t[f"paper_{short}_drop"] = t[f"paper_{short}"] - base.get(short, np.nan)
        parts.append(t)
    return (
        pd.concat(parts, ignore_index=True)[TABLE1_COLUMNS]
        if parts
        else pd.DataFrame(columns=TABLE1_COLUMNS)
    )


def table4(table: pd.DataFrame, paper_names: dict[str, str]) -> pd.DataFrame:
    """Table 4: the random rows with the std over seeds, beside the paper's."""
    cols = [
        "model",
        "strategy",
        "param",
        "token_pct",
        "n",
        "loc",
        "loc_std",
        "loc_lo",
        "loc_hi",
        "loc_drop",
        "cls",
        "cls_std",
        "cls_lo",
        "cls_hi",
        "cls_drop",
    ]
    paper_cols = ["paper_loc", "paper_loc_std", "paper_cls", "paper_cls_std"]
    if table.empty:
        return pd.DataFrame(columns=cols + paper_cols)
    t = table[table["strategy"].isin(["baseline", "random"])].copy()
    t = t[cols]
    for short in SHORT.values():
        t[f"paper_{short}"] = [
            TABLE4.get(p, {}).get(paper_names.get(m, ""), {}).get(short, np.nan)
            if s == "random"
            else TABLE1.get(paper_names.get(m, ""), {})
            .get(("baseline", None), {})
            .get(short, np.nan)
            for m, s, p in zip(t["model"], t["strategy"], t["param"], strict=True)
        ]
        t[f"paper_{short}_std"] = [
            TABLE4.get(p, {}).get(paper_names.get(m, ""), {}).get(f"{short}_std", np.nan)
            for m, p in zip(t["model"], t["param"], strict=True)
        ]
    return t.reset_index(drop=True)[cols + paper_cols]


def table5(
    rows_per_model: dict[str, pd.DataFrame],
    paper_names: dict[str, str],
    bootstrap: dict | None = None,
) -> pd.DataFrame:
    """Table 5: baseline, object, and as many IG-ranked or random tokens as the object has."""
    parts = []
    for model, rows in rows_per_model.items():
        t = strategy_table(rows, bootstrap)
        if t.empty:
            continue
        t = t.drop(columns="param")
        t.insert(0, "model", model)
        paper = TABLE5.get(paper_names.get(model, ""), {})
        for short in SHORT.values():
            t[f"paper_{short}"] = [paper.get(s, {}).get(short, np.nan) for s in t["strategy"]]
        parts.append(t)
    return (
        pd.concat(parts, ignore_index=True)[TABLE5_COLUMNS]
        if parts
        else pd.DataFrame(columns=TABLE5_COLUMNS)
    )


def format_table1(table: pd.DataFrame, models: Sequence[str]) -> str:
    """Markdown in the paper's layout: one row per strategy, per model token %, loc and cls with
    the drop from baseline (for the README and the report)."""
    if table.empty:
        return "(no rows)\n"
    head = "| strategy | " + " | ".join(f"{m} token % | {m} loc. | {m} cls." for m in models) + " |"
    lines = [head, "|" + "---|" * (1 + 3 * len(models))]
    keys = table.drop_duplicates(["strategy", "param"])[["strategy", "param"]].itertuples(
        index=False
    )
    for strategy, param in keys:
        label = (
            strategy
            if pd.isna(param)
            else f"{strategy} {param:+g}"
            if strategy == "object"
            else f"{strategy} {param:g}%"
        )
        cells = []
        for m in models:
            r = table[
                (table["model"] == m)
                & (table["strategy"] == strategy)
                & ((table["param"] == param) | (pd.isna(param) & table["param"].isna()))
            ]
            if r.empty:
                cells += ["", "", ""]
                continue
            r = r.iloc[0]
            tok = (
                f"({r['token_pct_global']:.0f},{r['token_pct_local']:.0f})"
                if not pd.isna(r["token_pct_local"])
                else f"{r['token_pct']:.0f}"
            )
            cells.append(tok)
            for short in ("loc", "cls"):
                drop = (
                    ""
                    if strategy == "baseline"
                    else f" {'↓' if r[f'{short}_drop'] < 0 else '↑'}{abs(r[f'{short}_drop']):.1f}"
                )
                std = f" ± {r[f'{short}_std']:.1f}" if not pd.isna(r[f"{short}_std"]) else ""
                cells.append(f"{r[short]:.1f}{std}{drop}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
