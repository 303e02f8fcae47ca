"""Consistency checks of the paper's published numbers transcribed into vlmloc.paper."""

from __future__ import annotations

from decimal import Decimal

import pytest

from vlmloc.paper import (
    PAPER_MODELS,
    TABLE1,
    TABLE1_BASELINE,
    TABLE1_TOKENS,
    TABLE4,
    TABLE5,
)

PADDINGS = (-2, -1, 0, 1, 2)
KS = (1, 4, 8, 16, 32, 48)
TABLE1_KEYS = (
    [("baseline", None), ("register", None)]
    + [("object", p) for p in PADDINGS]
    + [("ig", k) for k in KS]
    + [("random", k) for k in KS]
)

# Table 1's arrows (change vs baseline, ↓ negative), read off the paper independently of the
# values, in the order 7B loc, 7B cls, 13B loc, 13B cls, InternVL loc, InternVL cls.
ARROWS = {
    ("object", -2): (-0.6, -0.3, 0.1, -0.1, 0.1, 0.1),
    ("object", 0): (-29.4, -38.7, -39.6, -33.9, -61.4, -50.1),
    ("object", 2): (-35.0, -47.5, -46.7, -52.8, -70.6, -62.6),
    ("ig", 1): (-3.8, -5.4, -8.2, -4.9, -10.2, -1.8),
    ("ig", 8): (-19.5, -14.2, -33.9, -16.1, -42.5, -8.6),
    ("ig", 48): (-34.5, -25.9, -46.6, -36.6, -69.4, -23.8),
    ("random", 4): (0.2, -0.8, -1.0, -0.6, -0.3, 0.0),
    ("random", 8): (-0.2, -1.5, -1.7, -1.4, -0.9, -0.2),
    ("random", 32): (-4.9, -2.7, -7.1, -2.8, -5.8, -0.7),
    ("register", None): (-0.3, 1.4, -0.5, -0.4, 0.0, 0.1),
}
# Table 4's arrows for k = 24 (not in Table 1), same order.
ARROWS_TABLE4_K24 = (-3.4, -2.4, -5.0, -1.8, -3.8, -0.5)


def _matches_arrow(value: float, baseline: float, arrow: float) -> bool:
    """The arrow is round(value - baseline, 1); the paper rounds its exact x.x5 differences
    either way (e.g. IG k=8 7B cls -14.15 -> 14.2 but 13B cls at k=48 -36.65 -> 36.6), so a
    tie may go to either neighbour. Compared in decimal to avoid float noise."""
    diff = Decimal(str(value)) - Decimal(str(baseline))
    return abs(diff - Decimal(str(arrow))) <= Decimal("0.05")


def test_table1_has_every_row_for_every_model():
    assert set(TABLE1) == set(PAPER_MODELS)
    assert set(TABLE1_TOKENS) == set(PAPER_MODELS)
    for model in PAPER_MODELS:
        assert set(TABLE1[model]) == set(TABLE1_KEYS), model
        assert set(TABLE1_TOKENS[model]) == set(TABLE1_KEYS), model
        for key, row in TABLE1[model].items():
            assert set(row) == {"loc", "cls"}, (model, key)
            assert all(0 <= v <= 100 for v in row.values()), (model, key)


def test_table1_tokens():
    for model in PAPER_MODELS:
        tokens = TABLE1_TOKENS[model]
        assert tokens[("baseline", None)] == 0
        for strategy in ("ig", "random"):
            for k in KS:
                assert tokens[(strategy, k)] == k, (model, strategy, k)
    assert TABLE1_TOKENS["llava-1.5-7b"] == TABLE1_TOKENS["llava-1.5-13b"]
    internvl = TABLE1_TOKENS["internvl-3.5-8b"]
    for key in [("object", p) for p in PADDINGS] + [("register", None)]:
        assert isinstance(internvl[key], tuple) and len(internvl[key]) == 2, key
    # more padding removes more tokens, in every view
    llava = [TABLE1_TOKENS["llava-1.5-7b"][("object", p)] for p in PADDINGS]
    assert llava == sorted(llava)
    for view in (0, 1):
        shares = [internvl[("object", p)][view] for p in PADDINGS]
        assert shares == sorted(shares)


def test_table1_baseline_constant_agrees():
    assert set(TABLE1_BASELINE) == set(PAPER_MODELS)
    for model in PAPER_MODELS:
        assert TABLE1_BASELINE[model] == TABLE1[model][("baseline", None)], model


def test_table1_random_rows_equal_table4_means():
    assert set(TABLE4) == set(KS) | {24}
    for k in KS:
        for model in PAPER_MODELS:
            mean = {"loc": TABLE4[k][model]["loc"], "cls": TABLE4[k][model]["cls"]}
            assert TABLE1[model][("random", k)] == mean, (k, model)


def test_table4_rows_complete():
    for k, rows in TABLE4.items():
        assert set(rows) == set(PAPER_MODELS), k
        for model, row in rows.items():
            assert set(row) == {"loc", "loc_std", "cls", "cls_std"}, (k, model)
            assert 0 < row["loc_std"] < 1 and 0 < row["cls_std"] < 1, (k, model)


@pytest.mark.parametrize("key", list(ARROWS), ids=str)
def test_table1_arrows(key):
    cells = [(model, metric) for model in PAPER_MODELS for metric in ("loc", "cls")]
    for (model, metric), arrow in zip(cells, ARROWS[key], strict=True):
        value = TABLE1[model][key][metric]
        baseline = TABLE1[model][("baseline", None)][metric]
        assert _matches_arrow(value, baseline, arrow), (key, model, metric, value, baseline, arrow)


def test_table4_k24_arrows():
    cells = [(model, metric) for model in PAPER_MODELS for metric in ("loc", "cls")]
    for (model, metric), arrow in zip(cells, ARROWS_TABLE4_K24, strict=True):
        value = TABLE4[24][model][metric]
        baseline = TABLE1[model][("baseline", None)][metric]
        assert _matches_arrow(value, baseline, arrow), (model, metric, value, baseline, arrow)


def test_arrow_check_rejects_a_slip():
    assert _matches_arrow(5.92, 35.34, -29.4)
    assert _matches_arrow(43.95, 58.10, -14.2)  # exact -14.15, a tie
    assert not _matches_arrow(5.29, 35.34, -29.4)  # swapped digits
    assert not _matches_arrow(43.95, 58.10, -14.3)


def test_table5_shape():
    assert set(TABLE5) == {"baseline", "object", "ig", "random"}
    for strategy, rows in TABLE5.items():
        assert set(rows) == set(PAPER_MODELS), strategy
        for model, row in rows.items():
            assert set(row) == {"loc", "cls"}, (strategy, model)
            assert all(0 <= v <= 100 for v in row.values()), (strategy, model)
    # object ablation hurts localization most, on every model (sec. 7.3: "consistent results")
    for model in PAPER_MODELS:
        assert TABLE5["object"][model]["loc"] < TABLE5["random"][model]["loc"]
