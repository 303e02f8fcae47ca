"""The paper's tasks (appendix 6.2): prompts, answer parsing and scoring.

Parsing never raises: a reply that cannot be read gives status "unparsed" (or "out_of_range"),
and the caller keeps the raw text next to it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

LOCALIZATION_PROMPT = "Please provide the bounding box coordinates of the {category}."
LIST_PROMPT = "List all objects in the image. Choose only from {categories}."
BINARY_PROMPT = "Is there a {category} in the image?"
TASKS = ("localization", "list", "binary")
IOU_THRESHOLDS = (0.5, 0.7, 0.9)


def task_prompt(task: str, category: str, categories: Sequence[str]) -> str:
    if task == "localization":
        return LOCALIZATION_PROMPT.format(category=category)
    if task == "list":
        return LIST_PROMPT.format(categories=", ".join(categories))
    if task == "binary":
        return BINARY_PROMPT.format(category=category)
    raise ValueError(f"unknown task {task!r}; choose from {TASKS}")


# --- boxes -------------------------------------------------------------------------------------

_NUMBER = r"[-+]?\d*\.?\d+"
_GROUP4 = re.compile(
    rf"[\[\(]\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*[\]\)]"
)
_LOOSE4 = re.compile(rf"({_NUMBER})\s*[, ]\s*({_NUMBER})\s*[, ]\s*({_NUMBER})\s*[, ]\s*({_NUMBER})")


@dataclass(frozen=True)
class ParsedBox:
    """``box`` is (x1, y1, x2, y2) in the model's own coordinate convention, or None."""

    box: tuple[float, float, float, float] | None
    status: str  # ok | unparsed | out_of_range
    n_boxes: int = 0


def _groups(text: str, pattern: re.Pattern) -> list[tuple[float, ...]]:
    return [tuple(float(v) for v in m.groups()) for m in pattern.finditer(text)]


def box_number_spans(text: str) -> list[tuple[int, int, float]]:
    """(start, end, value) in ``text`` of the four numbers of the first box written there, as
    ``parse_box_numbers`` reads them; empty if there is none."""
    m = _GROUP4.search(text)
    return [(m.start(k), m.end(k), float(m.group(k))) for k in range(1, 5)] if m else []


def parse_box_numbers(text: str, scale: float, prefer: re.Pattern | None = None) -> ParsedBox:
    """First box of four numbers in ``text``, expected within 0..``scale``.

    Tries, in order: the family's own markup (``prefer``), bracketed groups of four, then any four
    numbers in a row. Several boxes: the first is taken and ``n_boxes`` says how many there were.
    Corners given in the wrong order are swapped. Values outside 0..scale (beyond a 1% slack,
    which is clipped) give ``out_of_range``.
    """
    boxes: list[tuple[float, ...]] = []
    if prefer is not None:
        for m in prefer.finditer(text):
            boxes += _groups("[" + m.group(1) + "]", _GROUP4)
    if not boxes:
        boxes = _groups(text, _GROUP4)
    if not boxes:
        boxes = _groups(text, _LOOSE4)
    if not boxes:
        return ParsedBox(None, "unparsed", 0)
    x1, y1, x2, y2 = boxes[0]
    if min(x1, y1, x2, y2) < -0.01 * scale or max(x1, y1, x2, y2) > 1.01 * scale:
        return ParsedBox(None, "out_of_range", len(boxes))
    x1, x2 = sorted((min(max(x1, 0.0), scale), min(max(x2, 0.0), scale)))
    y1, y2 = sorted((min(max(y1, 0.0), scale), min(max(y2, 0.0), scale)))
    return ParsedBox((x1, y1, x2, y2), "ok", len(boxes))


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def localization_scores(iou_value: float | None) -> dict[str, float]:
    """Success at IoU > t for the paper's thresholds, and their mean (the localization score)."""
    v = -1.0 if iou_value is None else iou_value
    hits = {f"success@{t}": float(v > t) for t in IOU_THRESHOLDS}
    hits["loc_score"] = sum(hits.values()) / len(IOU_THRESHOLDS)
    return hits


# --- classification ----------------------------------------------------------------------------

IRREGULAR_PLURALS = {
    "person": ["people", "persons"],
    "mouse": ["mice"],
    "sheep": ["sheep"],
    "knife": ["knives"],
}


def _name_pattern(name: str) -> re.Pattern:
    """The name as whole words, case-insensitive, in singular or plural ('s'/'es', irregulars),
    tolerating one space, hyphen or nothing between the words of a multi-word name."""
    words = name.lower().split()
    body = r"[\s\-]?".join(re.escape(w) for w in words)
    forms = [body + r"(?:e?s)?"] + [re.escape(p) for p in IRREGULAR_PLURALS.get(name.lower(), [])]
    return re.compile(r"(?<![\w])(?:" + "|".join(forms) + r")(?![\w])", re.I)


def mentions(answer: str, category: str, categories: Sequence[str] = ()) -> bool:
    """True if ``category`` is named in ``answer`` (the paper's list-task criterion).

    A hit that lies inside a mention of a longer category containing it does not count
    ("dog" inside "hot dog"; "circle" inside "red circle" when asked about "circle").
    """
    longer = [
        c for c in categories if c.lower() != category.lower() and category.lower() in c.lower()
    ]
    covered = [(m.start(), m.end()) for c in longer for m in _name_pattern(c).finditer(answer)]
    for m in _name_pattern(category).finditer(answer):
        if not any(s <= m.start() and m.end() <= e for s, e in covered):
            return True
    return False


def parse_yes_no(answer: str) -> bool | None:
    """Binary query: the first yes/no word decides; None if neither appears."""
    m = re.search(r"\b(yes|no)\b", answer, re.I)
    return None if m is None else m.group(1).lower() == "yes"
