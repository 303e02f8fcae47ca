import math

import pytest

from vlmloc.models.internvl import _BOX
from vlmloc.tasks import (
    iou,
    localization_scores,
    mentions,
    parse_box_numbers,
    parse_yes_no,
    task_prompt,
)

CATS = ["dog", "hot dog", "person", "dining table", "red circle", "circle", "chair"]


def test_prompts_are_the_papers():
    assert (
        task_prompt("localization", "dog", CATS)
        == "Please provide the bounding box coordinates of the dog."
    )
    assert (
        task_prompt("list", "dog", ["a", "b c"])
        == "List all objects in the image. Choose only from a, b c."
    )
    assert task_prompt("binary", "dining table", CATS) == "Is there a dining table in the image?"
    with pytest.raises(ValueError):
        task_prompt("caption", "dog", CATS)


@pytest.mark.parametrize(
    "text, box, status, n",
    [
        ("[0.12, 0.34, 0.56, 0.78]", (0.12, 0.34, 0.56, 0.78), "ok", 1),
        ("The bounding box of the dog is [0.1,0.2,0.3,0.4].", (0.1, 0.2, 0.3, 0.4), "ok", 1),
        ("0.1, 0.2, 0.3, 0.4", (0.1, 0.2, 0.3, 0.4), "ok", 1),  # missing brackets
        ("(0.5, 0.5, 0.1, 0.1)", (0.1, 0.1, 0.5, 0.5), "ok", 1),  # corners swapped
        ("[0.1, 0.2, 0.3, 0.4] and [0.5, 0.6, 0.7, 0.8]", (0.1, 0.2, 0.3, 0.4), "ok", 2),
        ("[.25, .5, 1.005, 1]", (0.25, 0.5, 1.0, 1.0), "ok", 1),  # tiny overshoot clipped
        ("[120, 45, 300, 200]", None, "out_of_range", 1),  # pixels instead of 0..1
        ("I cannot see a dog in this image.", None, "unparsed", 0),
        ("[0.1, 0.2, 0.3]", None, "unparsed", 0),
        ("", None, "unparsed", 0),
    ],
)
def test_llava_style_boxes(text, box, status, n):
    got = parse_box_numbers(text, scale=1.0)
    assert got.status == status and got.n_boxes == n
    if box is None:
        assert got.box is None
    else:
        assert got.box == pytest.approx(box)


@pytest.mark.parametrize(
    "text, box, status",
    [
        ("<ref>dog</ref><box>[[120, 45, 800, 999]]</box>", (120, 45, 800, 999), "ok"),
        ("The dog is at <box>[[10,20,30,40]]</box> in the image.", (10, 20, 30, 40), "ok"),
        ("<ref>dog</ref>[[120, 45, 800, 999]]", (120, 45, 800, 999), "ok"),  # no <box> markup
        ("<box>[[1, 2, 3, 4], [5, 6, 7, 8]]</box>", (1, 2, 3, 4), "ok"),
        ("<box>[[0, 0, 1200, 500]]</box>", None, "out_of_range"),
        ("<box>[[0, 0, 12</box>", None, "unparsed"),
    ],
)
def test_internvl_style_boxes(text, box, status):
    got = parse_box_numbers(text, scale=1000.0, prefer=_BOX)
    assert got.status == status
    assert got.box == (pytest.approx(box) if box else None)


def test_iou_and_scores():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert localization_scores(0.8) == {
        "success@0.5": 1.0,
        "success@0.7": 1.0,
        "success@0.9": 0.0,
        "loc_score": pytest.approx(2 / 3),
    }
    assert localization_scores(0.5)["success@0.5"] == 0.0  # "exceeds": strictly greater
    assert localization_scores(None)["loc_score"] == 0.0
    assert not math.isnan(localization_scores(1.0)["loc_score"])


@pytest.mark.parametrize(
    "answer, category, expected",
    [
        ("dog, person, chair", "dog", True),
        ("Dogs and a chair.", "dog", True),  # plural, case
        ("There are two people.", "person", True),  # irregular plural
        ("hot dog, chair", "dog", False),  # inside a longer category
        ("hot dog, dog", "dog", True),
        ("a dining table", "dining table", True),
        ("dining-table", "dining table", True),
        ("diningtable", "dining table", True),
        ("a red circle", "circle", False),  # 'circle' inside the category 'red circle'
        ("red circles", "red circle", True),
        ("hotdog", "dog", False),  # word boundary
        ("chairman", "chair", False),
        ("", "dog", False),
    ],
)
def test_class_mentions(answer, category, expected):
    assert mentions(answer, category, CATS) is expected


def test_yes_no():
    assert parse_yes_no("Yes, there is.") is True
    assert parse_yes_no("no") is False
    assert parse_yes_no("I think so, yes") is True
    assert parse_yes_no("Maybe.") is None


def test_box_number_spans_are_the_parsed_numbers():
    from vlmloc.tasks import box_number_spans, parse_box_numbers

    cases = (
        (" [0.30, 0.15, 0.70, 0.68]", 1.0, ["0.30", "0.15", "0.70", "0.68"]),
        ("<box>[[300, 150, 700, 680]]</box>", 1000.0, ["300", "150", "700", "680"]),
    )
    for text, scale, written in cases:
        spans = box_number_spans(text)
        assert [text[a:b] for a, b, _ in spans] == written
        assert tuple(v for _, _, v in spans) == parse_box_numbers(text, scale=scale).box
    assert box_number_spans("red circle, blue square") == []


def test_iou_apart_on_one_axis_is_zero_and_a_degenerate_pair_does_not_divide_by_zero():
    """Mutants that survived the tests above (docs/testing.md): a clamp of 1 instead of 0 on one
    axis, the wrong corner in the overlap, a division by an empty union."""
    assert iou((0, 0, 1, 10), (2, 0, 3, 10)) == 0.0  # overlapping rows, separate columns
    assert iou((0, 0, 10, 1), (0, 2, 10, 3)) == 0.0  # overlapping columns, separate rows
    assert iou((0, 6, 10, 16), (3, 6, 13, 16)) == pytest.approx(
        70 / 130
    )  # x1 of one box below y1 of the other
    assert iou((0, 3, 10, 13), (0, 6, 10, 16)) == pytest.approx(70 / 130)
    assert iou((1, 1, 1, 1), (1, 1, 1, 1)) == 0.0  # no area at all: 0, not ZeroDivisionError
    assert (
        iou((0, 0, 0.5, 0.5), (0, 0, 0.5, 0.5)) == 1.0
    )  # a union under one square unit still counts
