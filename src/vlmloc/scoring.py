"""Parsing and scoring of the models' replies: CPU only, no model loaded.

A model job writes RAW rows (answers, never scores); the workflow's scoring rule
(``workflow/scripts/score_rows.py``) parses and scores them here, with the family's parser. The
rule takes as input every source file this module imports within vlmloc
(``vlmloc.sources.scoring_sources``), so a parser fix rescores every experiment and reruns no
model job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from .tasks import IOU_THRESHOLDS, iou, localization_scores, mentions, parse_yes_no

EXCLUDED = "excluded"  # the condition of a sample's row when the experiment cannot use it
_NUMBER = re.compile(r"[-+]?\d*\.?\d+")
_SPACE = re.compile(r"\s+")


def answer_template(text: str) -> str:
    """A reply with every number replaced by ``#`` and its whitespace collapsed: what is left is
    its format."""
    return _SPACE.sub(" ", _NUMBER.sub("#", text)).strip()


def well_formed_box(adapter, answer: str, width: int, height: int) -> bool:
    """Whether a box reply is written exactly in the family's own format (``format_box`` after
    its answer prefix), whatever its numbers: ``<box>[[#, #, #, #]]</box>`` for InternVL,
    ``[#, #, #, #]`` for LLaVA. A reply the lenient parser still reads (``<box>[#, #, #, #]]``)
    is not well formed: head ablation reports such a broken format apart from a wrong box."""
    own = adapter.answer_prefix + adapter.format_box((0.0, 0.0, 1.0, 1.0), width, height)
    return answer_template(str(answer)) == answer_template(own)


def score_answer(adapter, task: str, answer: str, row: dict, categories: Sequence[str]) -> dict:
    """Parse one reply into the tidy columns; never raises (unparsed replies are marked, and so
    are replies cut off at ``max_new_tokens``: ``truncated``, see ``runner.Answer``)."""
    out = {
        "truncated": bool(getattr(answer, "truncated", False)),  # a plain str was not cut off
        "status": "ok",
        "n_boxes": 0,
        "pred_x1": np.nan,
        "pred_y1": np.nan,
        "pred_x2": np.nan,
        "pred_y2": np.nan,
        "iou": np.nan,
        "identified": np.nan,
        "well_formed": np.nan,
    }
    out.update({f"success@{t}": np.nan for t in IOU_THRESHOLDS})
    out["loc_score"] = np.nan
    if task == "localization":
        parsed = adapter.parse_box(answer, int(row["width"]), int(row["height"]))
        out["status"], out["n_boxes"] = parsed.status, parsed.n_boxes
        out["well_formed"] = float(
            well_formed_box(adapter, answer, int(row["width"]), int(row["height"]))
        )
        value = None
        if parsed.box is not None:
            out["pred_x1"], out["pred_y1"], out["pred_x2"], out["pred_y2"] = parsed.box
            gt = (
                row["bbox_x"],
                row["bbox_y"],
                row["bbox_x"] + row["bbox_w"],
                row["bbox_y"] + row["bbox_h"],
            )
            value = iou(parsed.box, gt)
            out["iou"] = value
        out.update(localization_scores(value))  # an unparsed box is a miss
    elif task == "list":
        out["identified"] = float(mentions(answer, row["category"], categories))
    elif task == "binary":
        yes = parse_yes_no(answer)
        out["status"] = "ok" if yes is not None else "unparsed"
        out["identified"] = np.nan if yes is None else float(yes)  # unparsed: unknown, not "no"
    return out


def score_rows(
    raw: pd.DataFrame, samples: pd.DataFrame, family: str, categories: Sequence[str]
) -> pd.DataFrame:
    """Parse and score raw rows (CPU only: the family's parser, no model)."""
    from .models import ADAPTERS

    parser = ADAPTERS[family].parser()
    by_id = samples.set_index("sample_id").to_dict("index")
    scored = []
    for row in tqdm(raw.to_dict("records"), desc="score", mininterval=5, disable=len(raw) < 5000):
        if row.get("readout") == "teacher_forced":  # a score of the gold answer, nothing to parse
            scored.append({"status": "scored"})
            continue
        sample = {"sample_id": row["sample_id"], **by_id[row["sample_id"]]}
        scores = score_answer(parser, row["task"], row["answer"], sample, categories)
        scores.pop("truncated")  # the raw row has it
        scored.append(scores)
    out = pd.concat(
        [raw.reset_index(drop=True), pd.DataFrame(scored, index=range(len(raw)))], axis=1
    )
    if len(out):
        out.loc[out["condition"] == EXCLUDED, "status"] = "excluded"
    if "size_bucket" in samples:
        out["size_bucket"] = out["sample_id"].map(samples.set_index("sample_id")["size_bucket"])
    return out


EXPECTED = (
    "expected_conditions"  # a raw shard's attrs: the [condition, task] pairs its experiment asked
)


def expected_pairs(shards: Sequence[pd.DataFrame]) -> set[tuple[str, str]] | None:
    """The (condition, task) pairs the shards' experiment asked (their attrs, written by
    ``run_conditions``), or None when no shard says (an experiment with its own loop)."""
    said = [s.attrs[EXPECTED] for s in shards if EXPECTED in s.attrs]
    return {(str(c), str(t)) for pairs in said for c, t in pairs} if said else None


def check_complete(
    raw: pd.DataFrame, sample_ids: Sequence[str], pairs: set[tuple[str, str]] | None = None
) -> None:
    """The gather step's guard: every (condition, task) has each expected sample exactly once.
    ``pairs``: the (condition, task) pairs asked (``expected_pairs``); without them only the
    pairs that have rows are checked, and a pair that lost every row would go unnoticed."""
    if pairs is not None and len(raw):
        answered = raw[raw["condition"] != EXCLUDED]
        found = set(
            zip(answered["condition"].astype(str), answered["task"].astype(str), strict=True)
        )
        if found - pairs:
            raise ValueError(
                f"rows of (condition, task) pairs the experiment never asked: {sorted(found - pairs)[:3]}"
            )
        kept = set(sample_ids) - set(raw.loc[raw["condition"] == EXCLUDED, "sample_id"])
        lost = sorted(pairs - found)
        if lost and kept:
            raise ValueError(
                f"{lost[0][0]}/{lost[0][1]}: all {len(kept)} samples missing ({len(lost)} (condition, task) "
                "pairs without a row; a shard lost?)"
            )
    expected = set(sample_ids)
    excluded = set(raw.loc[raw["condition"] == EXCLUDED, "sample_id"])
    both = excluded & set(raw.loc[raw["condition"] != EXCLUDED, "sample_id"])
    if both:
        raise ValueError(
            f"{len(both)} samples are both excluded and answered, e.g. {sorted(both)[:3]}"
        )
    dup = raw[raw.duplicated(["condition", "task", "sample_id"], keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise ValueError(
            f"{len(dup)} rows repeat a (condition, task, sample): e.g. sample {first['sample_id']!r} "
            f"in {first['condition']}/{first['task']} (a shard written twice?)"
        )
    extra = set(raw["sample_id"]) - expected
    if extra:
        raise ValueError(
            f"{len(extra)} samples are not in the probing subset, e.g. {sorted(extra)[:3]}"
        )
    for (cond, task), ids in raw[raw["condition"] != EXCLUDED].groupby(["condition", "task"])[
        "sample_id"
    ]:
        missing = expected - excluded - set(ids)
        if missing:
            raise ValueError(
                f"{cond}/{task}: {len(missing)} samples missing, e.g. {sorted(missing)[:3]} (a shard lost?)"
            )
