"""Tables of the cumulative head ablation (paper sec. 3.3.3, Fig. 5 / 15).

Head ablation: localization accuracy (mean localization score, %) per ablation, positions,
setting, seed and share of heads zeroed; every curve starts at the unmodified model (the
baseline condition). Its normalized AUC and the differences of AUCs get intervals from a paired
bootstrap over samples (and, for the random heads, over seeds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..defaults import with_defaults
from ..paper import HEAD_ABLATION_VARIANT
from ..scoring import EXCLUDED
from ..statistics import bootstrap_ci, paired_mean_draws

SETTING_ORDER = ("baseline", "localization", "classification", "lowest", "random")
VARIANT = ("ablation", "positions")
# rows written before the variants were columns: the paper's (a fact of those rows, not a default)
DEFAULT_VARIANT = HEAD_ABLATION_VARIANT
VARIANT_ORDER = {"ablation": ("zero", "mean"), "positions": ("post_image", "all")}
CRITICAL = ("localization", "classification")
CONTROLS = ("lowest", "random")
CURVE_COLUMNS = [
    "model",
    "paper_name",
    *VARIANT,
    "setting",
    "seed",
    "proportion",
    "n_heads",
    "accuracy",
    "acc_lo",
    "acc_hi",
    "n",
    "format_broken",
    "acc_well_formed",
    "n_well_formed",
]
AUC_COLUMNS = [
    "model",
    "paper_name",
    *VARIANT,
    "setting",
    "seed",
    "n_seeds",
    "auc",
    "auc_lo",
    "auc_hi",
    "auc_std",
    "baseline",
    "proportion_min",
    "proportion_max",
    "n_points",
]
CONTRAST_COLUMNS = [
    "model",
    "paper_name",
    *VARIANT,
    "setting",
    "versus",
    "delta_auc",
    "delta_lo",
    "delta_hi",
    "p",
    "n",
    "n_seeds",
    "resamples",
]


def _localization_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The scored localization rows of the samples head ablation used, with the variant columns
    (rows written before they existed: the paper's zero ablation after the image)."""
    if rows.empty:  # an empty probing subset: no rows, and maybe no columns either
        return rows
    rows = rows[(rows["condition"] != EXCLUDED) & (rows["task"] == "localization")]
    return rows.assign(**{c: v for c, v in DEFAULT_VARIANT.items() if c not in rows})


def _well_formed(g: pd.DataFrame) -> pd.Series:
    """Per row: 1 if the answer is written in the family's own format, 0 if not, NaN unknown
    (rows scored before ``well_formed`` existed)."""
    if "well_formed" not in g:
        return pd.Series(np.nan, index=g.index)
    return pd.to_numeric(g["well_formed"], errors="coerce").astype(float)


def _curve_points(rows: pd.DataFrame, b: dict) -> pd.DataFrame:
    """Accuracy per (ablation, positions, setting, seed, proportion) with its interval over
    samples; the share of answers out of the family's format and the accuracy of the rest."""
    recs = []
    keys = [*VARIANT, "setting", "seed", "proportion"]
    for key, g in rows.groupby(keys, sort=False):
        score = 100 * g.groupby("sample_id")["loc_score"].mean().astype(float)
        lo, hi = bootstrap_ci(score.to_numpy(), b["resamples"], b["level"], b["seed"])
        wf = _well_formed(g)
        well = g[wf == 1]
        recs.append(
            {
                **dict(zip(keys, key, strict=True)),
                "seed": int(key[3]),
                "proportion": float(key[4]),
                "n_heads": int(g["n_heads"].max()),
                "accuracy": float(score.mean()),
                "acc_lo": lo,
                "acc_hi": hi,
                "n": len(score),
                "format_broken": float(100 * (1 - wf.mean())) if wf.notna().any() else np.nan,
                "acc_well_formed": float(100 * well["loc_score"].astype(float).mean())
                if len(well)
                else np.nan,
                "n_well_formed": int(len(well)) if wf.notna().any() else np.nan,
            }
        )
    return pd.DataFrame(recs, columns=CURVE_COLUMNS[2:])


def _with_baseline(points: pd.DataFrame) -> pd.DataFrame:
    """Each curve (ablation, positions, setting, seed) with the unmodified model as its point at
    proportion 0 (one baseline serves every variant: nothing is ablated there)."""
    base = points[points["setting"] == "baseline"]
    curves = points[points["setting"] != "baseline"]
    if base.empty or curves.empty:
        return points
    parts = [curves]
    curve_keys = [*VARIANT, "setting", "seed"]
    starts = set(
        curves.loc[curves["proportion"] == 0, curve_keys].itertuples(index=False, name=None)
    )
    for key in curves[curve_keys].drop_duplicates().itertuples(index=False, name=None):
        if key not in starts:
            parts.append(base.iloc[:1].assign(**dict(zip(curve_keys, key, strict=True))))
    return pd.concat(parts, ignore_index=True)


def _order(t: pd.DataFrame) -> pd.DataFrame:
    ranks = {c: {v: i for i, v in enumerate(VARIANT_ORDER[c])} for c in VARIANT}
    settings = {s: i for i, s in enumerate(SETTING_ORDER)}
    keys = {
        **{f"_{c}": t[c].map(ranks[c]).fillna(len(ranks[c])) for c in VARIANT},
        "_s": t["setting"].map(settings).fillna(len(settings)),
    }
    t = t.assign(**keys)
    by = ["_ablation", "ablation", "_positions", "positions", "_s", "setting"]
    by += [c for c in ("versus", "seed", "proportion") if c in t]
    return t.sort_values(by, kind="stable").drop(columns=list(keys))


def head_ablation_table(
    rows_by_model: dict[str, pd.DataFrame], bootstrap: dict | None, paper_names: dict[str, str]
) -> pd.DataFrame:
    """One row per model, ablation, positions, setting, seed (-1 unless random) and proportion of
    heads ablated: localization accuracy (%) with its bootstrap interval over samples, the share
    of answers not written in the family's format (``format_broken``, %) and the accuracy of
    the well-formed ones. The baseline is each curve's first point (proportion 0)."""
    b = with_defaults("bootstrap", bootstrap)
    parts = []
    for model, rows in rows_by_model.items():
        rows = _localization_rows(rows)
        if rows.empty:
            continue
        t = _order(_with_baseline(_curve_points(rows, b)))
        t.insert(0, "model", model)
        t.insert(1, "paper_name", paper_names.get(model, ""))
        parts.append(t)
    if not parts:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[CURVE_COLUMNS]


def normalized_auc(proportion, accuracy_pct) -> float:
    """Trapezoid area under accuracy (0..1) over proportion, divided by the proportion range."""
    x, y = np.asarray(proportion, dtype=float), np.asarray(accuracy_pct, dtype=float) / 100
    order = np.argsort(x)
    x, y = x[order], y[order]
    return float(np.trapezoid(y, x) / (x[-1] - x[0])) if len(x) > 1 and x[-1] > x[0] else np.nan


def per_sample_auc(rows: pd.DataFrame) -> pd.DataFrame:
    """Each sample's normalized AUC per curve (ablation, positions, setting, seed): its score
    (0..1) over the proportions, the unmodified model's at 0. Their mean over samples is the
    curve's AUC (the area is linear in the scores), so resampling samples gives its interval."""
    keys = [*VARIANT, "setting", "seed"]
    rows = _localization_rows(rows)
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "sample_id", "auc"])
    base = rows[rows["setting"] == "baseline"].groupby("sample_id")["loc_score"].mean()
    parts = []
    for key, g in rows[rows["setting"] != "baseline"].groupby(keys, sort=False):
        wide = g.groupby(["sample_id", "proportion"])["loc_score"].mean().unstack("proportion")
        if 0.0 not in wide.columns:
            wide[0.0] = base.reindex(wide.index)
        wide = wide[sorted(wide.columns)]
        x = wide.columns.to_numpy(float)
        y = wide.to_numpy(float)
        auc = (
            np.trapezoid(y, x, axis=1) / (x[-1] - x[0])
            if len(x) > 1 and x[-1] > x[0]
            else np.full(len(wide), np.nan)
        )
        part = pd.DataFrame({"sample_id": wide.index, "auc": auc})
        for c, v in zip(keys, key, strict=True):
            part[c] = v
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[*keys, "sample_id", "auc"])
    return pd.concat(parts, ignore_index=True)[[*keys, "sample_id", "auc"]]


def _auc_matrix(per: pd.DataFrame, variant: tuple, setting: str) -> pd.DataFrame:
    """Samples x seeds of one curve's per-sample AUC (one column unless random)."""
    a, pos = variant
    c = per[(per["ablation"] == a) & (per["positions"] == pos) & (per["setting"] == setting)]
    return c.pivot_table(index="sample_id", columns="seed", values="auc", dropna=False)


def head_ablation_auc(
    table: pd.DataFrame,
    rows_by_model: dict[str, pd.DataFrame] | None = None,
    bootstrap: dict | None = None,
) -> pd.DataFrame:
    """Normalized AUC per model, ablation, positions, setting and seed, and for random also one
    row (seed -1) with the mean and std (ddof 0) over seeds. With the rows, each AUC gets a 95%
    bootstrap interval over samples (the random mean's also over seeds).

    Normalized AUC = trapezoid area under accuracy (0..1) over the proportion of heads ablated,
    divided by (max - min proportion): the curve's mean accuracy over the proportions ablated
    (trapezoid-weighted). It is not relative to the unmodified model: a curve that never drops
    scores the baseline accuracy (``baseline``), a linear fall from 1 to 0 gives 0.5. The paper
    reports "normalized AUC" (Fig. 5 / 15) without defining the normalization."""
    b = with_defaults("bootstrap", bootstrap)
    alpha = (1 - b["level"]) / 2
    table = table.assign(**{c: v for c, v in DEFAULT_VARIANT.items() if c not in table})
    recs = []
    curves = table[table["setting"] != "baseline"]
    keys = ["model", *VARIANT, "setting"]
    for (model, a, pos, setting), s in curves.groupby(keys, sort=False):
        per = (
            per_sample_auc(rows_by_model[model])
            if rows_by_model is not None and model in rows_by_model
            else None
        )
        matrix = _auc_matrix(per, (a, pos), setting) if per is not None else None
        base = s.loc[s["proportion"] == 0, "accuracy"]
        per_seed = []
        for seed, c in s.groupby("seed"):
            per_seed.append(normalized_auc(c["proportion"], c["accuracy"]))
            lo = hi = np.nan
            if matrix is not None and seed in matrix:
                col = matrix[[seed]].dropna().to_numpy()
                if len(col):
                    [draws] = paired_mean_draws([col], b["resamples"], b["seed"])
                    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
            recs.append(
                {
                    "model": model,
                    "paper_name": c["paper_name"].iloc[0],
                    "ablation": a,
                    "positions": pos,
                    "setting": setting,
                    "seed": int(seed),
                    "n_seeds": 1,
                    "auc": per_seed[-1],
                    "auc_lo": lo,
                    "auc_hi": hi,
                    "auc_std": np.nan,
                    "baseline": float(base.iloc[0]) / 100 if len(base) else np.nan,
                    "proportion_min": c["proportion"].min(),
                    "proportion_max": c["proportion"].max(),
                    "n_points": len(c),
                }
            )
        if setting == "random":
            lo = hi = np.nan
            if matrix is not None and len(matrix.dropna()):
                [draws] = paired_mean_draws([matrix.dropna().to_numpy()], b["resamples"], b["seed"])
                lo, hi = np.quantile(draws, [alpha, 1 - alpha])
            recs.append(
                {
                    **recs[-1],
                    "seed": -1,
                    "n_seeds": len(per_seed),
                    "auc": float(np.mean(per_seed)),
                    "auc_lo": lo,
                    "auc_hi": hi,
                    "auc_std": float(np.std(per_seed)),
                    "n_points": s["proportion"].nunique(),
                }
            )
    return pd.DataFrame(recs, columns=AUC_COLUMNS)


def head_ablation_contrasts(
    rows_by_model: dict[str, pd.DataFrame], bootstrap: dict | None, paper_names: dict[str, str]
) -> pd.DataFrame:
    """Per model and (ablation, positions): AUC(critical) - AUC(control) for the critical
    rankings (localization, classification) against the low-importance and the random heads
    (mean over seeds), with a 95% paired bootstrap interval over samples (resampled together for
    both curves; the random heads' seeds resampled too) and the bootstrap's two-sided p-value of
    a zero difference. Negative: the critical heads cost more localization over the whole curve."""
    b = with_defaults("bootstrap", bootstrap)
    alpha = (1 - b["level"]) / 2
    recs = []
    for model, rows in rows_by_model.items():
        per = per_sample_auc(rows)
        if per.empty:
            continue
        variants = per[list(VARIANT)].drop_duplicates().itertuples(index=False, name=None)
        for variant in variants:
            have = set(
                per.loc[
                    (per["ablation"] == variant[0]) & (per["positions"] == variant[1]), "setting"
                ]
            )
            for setting in (s for s in CRITICAL if s in have):
                for versus in (v for v in CONTROLS if v in have):
                    crit = _auc_matrix(per, variant, setting)
                    ctrl = _auc_matrix(per, variant, versus)
                    both = crit.dropna().index.intersection(ctrl.dropna().index)
                    if not len(both):
                        continue
                    a, c = crit.loc[both].to_numpy(), ctrl.loc[both].to_numpy()
                    da, dc = paired_mean_draws([a, c], b["resamples"], b["seed"])
                    d = da - dc
                    n = len(d)
                    p = min(1.0, 2 * min(1 + np.sum(d <= 0), 1 + np.sum(d >= 0)) / (n + 1))
                    recs.append(
                        {
                            "model": model,
                            "paper_name": paper_names.get(model, ""),
                            "ablation": variant[0],
                            "positions": variant[1],
                            "setting": setting,
                            "versus": versus,
                            "delta_auc": float(a.mean() - c.mean()),
                            "delta_lo": float(np.quantile(d, alpha)),
                            "delta_hi": float(np.quantile(d, 1 - alpha)),
                            "p": float(p),
                            "n": len(both),
                            "n_seeds": c.shape[1],
                            "resamples": int(b["resamples"]),
                        }
                    )
    out = pd.DataFrame(recs, columns=CONTRAST_COLUMNS)
    if not len(out):
        return out
    return pd.concat([_order(g) for _, g in out.groupby("model", sort=False)], ignore_index=True)
