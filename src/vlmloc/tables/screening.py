"""Screening's tables (paper sec. 2.2, appendix 6.2): the hallucination filter, the probing
subset, the counts, baseline accuracy and false-positive rates, from scored rows. Torch-free:
the CPU jobs that build them import no model code."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..paper import FILTERED, FPR_RANGE, PROBING, TABLE1_BASELINE
from ..tasks import IOU_THRESHOLDS


def identified(answers: pd.DataFrame, condition: str, query: str) -> pd.Series:
    """1.0 / 0.0 per sample, NaN where the reply was not read (unknown)."""
    sel = answers[(answers["condition"] == condition) & (answers["task"] == query)]
    return sel.set_index("sample_id")["identified"].astype(float)


FILTER_COLUMNS = ["sample_id", "identified_original", "identified_removed", "kept", "reason"]
UNKNOWN = "unknown"  # the prefix of the reasons of samples the filter cannot decide


def _reason(orig: float, rem: float) -> str:
    """A definite reply decides first; an unknown one excludes a sample nothing else excludes."""
    if orig == 0:
        return "not identified on the original"
    if rem == 1:
        return "identified on the removed image"
    if np.isnan(orig):
        return f"{UNKNOWN} on the original"
    if np.isnan(rem):
        return f"{UNKNOWN} on the removed image"
    return "kept"


def hallucination_filter(answers: pd.DataFrame, query: str = "binary") -> pd.DataFrame:
    """Samples identified on the original and NOT on the object-removed image (per model); a
    sample whose reply was not read (or is missing) on either image is excluded as unknown."""
    if answers.empty:
        return pd.DataFrame(columns=FILTER_COLUMNS)
    orig, rem = identified(answers, "original", query), identified(answers, "removed", query)
    out = pd.DataFrame({"identified_original": orig, "identified_removed": rem.reindex(orig.index)})
    out["reason"] = [
        _reason(o, r)
        for o, r in zip(out["identified_original"], out["identified_removed"], strict=True)
    ]
    out["kept"] = out["reason"] == "kept"
    return out.rename_axis("sample_id").reset_index()[FILTER_COLUMNS]


def probing_subset(samples: pd.DataFrame, kept_per_model: dict[str, pd.DataFrame]) -> pd.DataFrame:
    ids = set(samples["sample_id"])
    for kept in kept_per_model.values():
        ids &= set(kept.loc[kept["kept"], "sample_id"])
    return samples[samples["sample_id"].isin(ids)].reset_index(drop=True)


def counts_table(
    dataset_kind: str,
    samples: pd.DataFrame,
    kept_per_model: dict[str, pd.DataFrame],
    subset: pd.DataFrame,
) -> pd.DataFrame:
    image_of = samples.set_index("sample_id")["image_id"]
    rows = [
        {
            "step": "filtered samples",
            "annotations": len(samples),
            "images": samples["image_id"].nunique(),
        }
    ]
    for model, kept in kept_per_model.items():
        ids = kept.loc[kept["kept"], "sample_id"]
        rows.append(
            {
                "step": f"hallucination filter: {model}",
                "annotations": len(ids),
                "images": image_of.reindex(ids).nunique(),
                "excluded_unknown": int(kept["reason"].str.startswith(UNKNOWN).sum()),
            }
        )
    rows.append(
        {
            "step": "probing subset (intersection)",
            "annotations": len(subset),
            "images": subset["image_id"].nunique(),
        }
    )
    out = pd.DataFrame(rows).reindex(columns=["step", "annotations", "images", "excluded_unknown"])
    out["excluded_unknown"] = out["excluded_unknown"].astype("Int64")
    out["paper_annotations"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out["paper_images"] = pd.array([pd.NA] * len(out), dtype="Int64")
    for row, published in (
        (0, FILTERED.get(dataset_kind)),
        (len(out) - 1, PROBING.get(dataset_kind)),
    ):
        if published:
            out.loc[out.index[row], ["paper_annotations", "paper_images"]] = [
                published["annotations"],
                published["images"],
            ]
    return out


def baseline_accuracy(
    answers_per_model: dict[str, pd.DataFrame], subset: pd.DataFrame, paper_models: dict[str, str]
) -> pd.DataFrame:
    """Localization score, success at each IoU and list classification, on the probing subset
    and on all filtered samples, next to the paper's Table 1 baseline where the model is one of
    the paper's (``paper_models`` maps our model name to the paper's)."""
    ids = set(subset["sample_id"])
    rows = []
    for model, ans in answers_per_model.items():
        orig = ans[ans["condition"] == "original"]
        for scope, sel in (
            ("probing subset", orig[orig["sample_id"].isin(ids)]),
            ("all filtered", orig),
        ):
            loc, cls = sel[sel["task"] == "localization"], sel[sel["task"] == "list"]
            row = {
                "model": model,
                "samples": scope,
                "n": len(loc),
                "loc_score": 100 * loc["loc_score"].mean() if len(loc) else np.nan,
                **{
                    f"success@{t}": 100 * loc[f"success@{t}"].mean() if len(loc) else np.nan
                    for t in IOU_THRESHOLDS
                },
                "cls": 100 * cls["identified"].mean() if len(cls) else np.nan,
                "unparsed_boxes": int((loc["status"] != "ok").sum()),
                "truncated": int(sel["truncated"].eq(True).sum()) if "truncated" in sel else 0,
            }
            paper = TABLE1_BASELINE.get(paper_models.get(model, ""), {})
            row["paper_loc"] = paper.get("loc", np.nan) if scope == "probing subset" else np.nan
            row["paper_cls"] = paper.get("cls", np.nan) if scope == "probing subset" else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def false_positive_rates(answers_per_model: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Appendix 6.2: FPR = P(detected | object absent) on the object-removed images, list vs
    binary, over the replies that were read; the unread ones are counted beside it."""
    rows = []
    for model, ans in answers_per_model.items():
        rem = ans[ans["condition"] == "removed"]
        row = {"model": model, "n": int((rem["task"] == "binary").sum())}
        for query in ("list", "binary"):
            sel = rem.loc[rem["task"] == query, "identified"].astype(float)
            row[f"fpr_{query}"] = sel.mean() if sel.notna().any() else np.nan
            row[f"unparsed_{query}"] = int(sel.isna().sum())
        row["paper_fpr_list"], row["paper_fpr_binary"] = FPR_RANGE["list"], FPR_RANGE["binary"]
        rows.append(row)
    return pd.DataFrame(rows)
