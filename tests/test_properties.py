"""Laws that hold for every input, checked with hypothesis: the parsers never raise, a box's
tokens are exactly the cells that overlap it, a shuffle keeps the multiset of tokens, and the
gather guard rejects any duplicated or missing sample."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlmloc.experiments.containerization import shuffle_tokens
from vlmloc.gather import check_gathered
from vlmloc.geometry import object_token_indices
from vlmloc.interventions import CopyVisualTokens
from vlmloc.models import ADAPTERS, ImageLayout, View
from vlmloc.scoring import EXCLUDED, EXPECTED, check_complete, expected_pairs
from vlmloc.tasks import mentions, parse_box_numbers, parse_yes_no

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- parsers ------------------------------------------------------------------------------------

_number = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats().map(repr),
    st.text("0123456789.-+e", max_size=12),
)
_numbers = st.lists(_number, min_size=0, max_size=6)
REPLIES = st.one_of(
    st.text(),
    st.builds(
        lambda pre, ns, sep: pre + "[" + sep.join(ns) + "]",
        st.text(max_size=8),
        _numbers,
        st.sampled_from([", ", " ", ","]),
    ),
    st.builds(lambda ns: "<box>[[" + ", ".join(ns) + "]]</box>", _numbers),
    st.builds(lambda ns: " ".join(ns), _numbers),
)


@FAST
@given(REPLIES, st.floats(min_value=1e-3, max_value=1e4))
def test_box_parser_never_raises(reply, scale):
    parsed = parse_box_numbers(reply, scale)
    assert parsed.status in ("ok", "unparsed", "out_of_range") and (parsed.box is None) == (
        parsed.status != "ok"
    )


@FAST
@given(st.text(), st.text(max_size=20), st.lists(st.text(max_size=20), max_size=4))
def test_yes_no_and_mentions_never_raise(reply, category, categories):
    assert parse_yes_no(reply) in (True, False, None)
    assert mentions(reply, category, categories) in (True, False)


@pytest.mark.parametrize("family", sorted(ADAPTERS))
@FAST
@given(reply=REPLIES, width=st.integers(1, 5000), height=st.integers(1, 5000))
def test_each_family_box_parser_never_raises(family, reply, width, height):
    parsed = ADAPTERS[family].parser().parse_box(reply, width, height)
    assert parsed.status in ("ok", "unparsed", "out_of_range")


# --- box-to-token geometry ------------------------------------------------------------------------


@st.composite
def boxes(draw):
    """(width, height, pixel box x0, y0, x1, y1) with the box inside the image."""
    w, h = draw(st.integers(4, 400)), draw(st.integers(4, 400))
    x0, y0 = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
    return w, h, x0, y0, draw(st.integers(x0 + 1, w)), draw(st.integers(y0 + 1, h))


@st.composite
def views(draw, width, height):
    """A grid over any region around or inside the image, fractional edges included."""
    x0, y0 = (
        draw(st.floats(-0.5 * width, 0.9 * width)),
        draw(st.floats(-0.5 * height, 0.9 * height)),
    )
    x1, y1 = draw(st.floats(x0 + 1, 1.5 * width + 1)), draw(st.floats(y0 + 1, 1.5 * height + 1))
    return View(
        "image", "global", draw(st.integers(1, 24)), draw(st.integers(1, 24)), (x0, y0, x1, y1), 0
    )


def _overlapping_cells(layout, box):
    """Tokens whose cell shares a positive area with the pixel box [x0, x1) x [y0, y1)."""
    x0, y0, x1, y1 = box
    return {
        t["token"]
        for t in layout.token_table()
        if min(t["x1"], x1) - max(t["x0"], x0) > 0 and min(t["y1"], y1) - max(t["y0"], y0) > 0
    }


def _box_mask(w, h, x0, y0, x1, y1):
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


@FAST
@given(st.data())
def test_box_tokens_are_the_cells_that_overlap_the_box(data):
    w, h, *box = data.draw(boxes())
    layout = ImageLayout(w, h, (data.draw(views(w, h)),))
    got = set(object_token_indices(layout, _box_mask(w, h, *box)).tolist())
    assert got == _overlapping_cells(layout, box)


@pytest.mark.parametrize("family", ["llava", "internvl"])
@settings(max_examples=60, deadline=None)
@given(box=boxes())
def test_box_tokens_overlap_the_box_on_each_family_layout(adapters, family, box):
    """The same law on the adapters' own layouts (LLaVA's padded square, InternVL's tiles)."""
    w, h, *xyxy = box
    layout = adapters[family].layout(w, h)
    got = object_token_indices(layout, _box_mask(w, h, *xyxy))
    assert len(np.unique(got)) == len(got) and set(got.tolist()) == _overlapping_cells(layout, xyxy)


# --- shuffles -------------------------------------------------------------------------------------


@st.composite
def tiled_layouts(draw):
    """One to three views side by side (offsets in sequence order), on a 60 x 40 image."""
    views, offset = [], 0
    for k in range(draw(st.integers(1, 3))):
        rows, cols = draw(st.integers(1, 8)), draw(st.integers(1, 8))
        views.append(
            View(f"tile_{k}", "local" if k else "global", rows, cols, (0, 0, 60, 40), offset)
        )
        offset += rows * cols
    return ImageLayout(60, 40, tuple(views))


@FAST
@given(tiled_layouts(), st.integers(0, 2**32 - 1), st.booleans(), boxes())
def test_a_shuffle_keeps_the_multiset_of_tokens(layout, seed, object_only, box):
    _, _, x0, y0, x1, y1 = box
    mask = (
        _box_mask(
            60, 40, min(x0, 59), min(y0, 39), min(max(x1, x0 + 1), 60), min(max(y1, y0 + 1), 40)
        )
        if object_only
        else None
    )
    targets, sources = shuffle_tokens(layout, mask, np.random.default_rng(seed))
    assert sorted(targets.tolist()) == sorted(sources.tolist())
    for v in layout.views:  # each view on its own
        inside = (targets >= v.offset) & (targets < v.offset + v.n_tokens)
        assert ((sources[inside] >= v.offset) & (sources[inside] < v.offset + v.n_tokens)).all()
    tokens = torch.randn(layout.n_tokens, 3)
    out = CopyVisualTokens([targets], [sources]).edit_query(0, tokens, layout)
    assert sorted(map(tuple, out.tolist())) == sorted(map(tuple, tokens.tolist()))
    untouched = np.setdiff1d(np.arange(layout.n_tokens), targets)
    torch.testing.assert_close(out[untouched], tokens[untouched], atol=0, rtol=0)


# --- the gather guard -----------------------------------------------------------------------------

IDS = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=8, unique=True)


def _raw(ids):
    return pd.DataFrame(
        [
            {"sample_id": s, "condition": c, "task": t}
            for c in ("baseline", "object+0")
            for t in ("localization", "list")
            for s in ids
        ]
    )


@FAST
@given(IDS, st.data())
def test_the_gather_rejects_a_duplicated_or_missing_sample(ids, data):
    raw = _raw(ids)
    check_complete(raw, ids)
    row = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(ValueError, match="repeat"):
        check_complete(pd.concat([raw, raw.iloc[[row]]], ignore_index=True), ids)
    with pytest.raises(ValueError, match="not in the probing subset"):
        check_complete(raw, ids[:-1] if len(ids) > 1 else ["another"])
    if len(ids) > 1:  # the (condition, task) keeps other rows: see the xfail below for the rest
        with pytest.raises(ValueError, match="missing"):
            check_complete(raw.drop(index=row), ids)


def test_the_gather_rejects_a_condition_that_lost_every_row():
    """From the rows alone a (condition, task) that lost every row cannot be seen (a one-sample
    subset missing a row); the pairs the experiment asked, kept in the shards' attrs, show it."""
    raw = _raw(["only"])
    shard = raw.copy()
    shard.attrs[EXPECTED] = [
        [c, t] for c, t in raw[["condition", "task"]].drop_duplicates().to_numpy()
    ]
    pairs = expected_pairs([shard])
    assert pairs == {
        ("baseline", "localization"),
        ("baseline", "list"),
        ("object+0", "localization"),
        ("object+0", "list"),
    }
    check_complete(raw.iloc[1:], ["only"])  # unnoticed without them
    check_complete(raw, ["only"], pairs)
    with pytest.raises(ValueError, match="all 1 samples missing"):
        check_complete(raw.iloc[1:], ["only"], pairs)
    with pytest.raises(ValueError, match="never asked"):
        check_complete(raw, ["only"], pairs - {("object+0", "list")})
    excluded = pd.DataFrame([{"sample_id": "only", "condition": EXCLUDED, "task": "none"}])
    check_complete(excluded, ["only"], pairs)  # every sample excluded: nothing can be missing


def test_a_shard_keeps_the_pairs_its_experiment_asked(tmp_path):
    """run_conditions writes them into the raw rows' attrs; the parquet keeps them."""
    from vlmloc.experiments.base import Condition, run_shard

    class Two:
        name, param_columns = "two", ()

        def exclude(self, job):
            return {"b": "too small"}

        def run(self, job, log=None):
            from vlmloc.experiments.base import run_conditions

            return run_conditions(
                "two", [Condition("c1", {}, tasks=("localization",)), Condition("c2", {})], job
            )

    job = SimpleNamespace(samples=pd.DataFrame({"sample_id": ["a", "b"]}))
    job.without = lambda excluded: SimpleNamespace(
        samples=job.samples.iloc[:1], records=[{"sample_id": "a"}]
    )
    import vlmloc.experiments.base as base

    original = base._run_group
    base._run_group = lambda experiment, group, job, log=None: [
        {"sample_id": "a", "condition": c.name, "task": t} for c in group for t in c.tasks
    ]
    try:
        raw = run_shard(Two(), job)
    finally:
        base._run_group = original
    raw.to_parquet(tmp_path / "shard.parquet")
    back = pd.read_parquet(tmp_path / "shard.parquet")
    assert expected_pairs([back]) == {
        ("c1", "localization"),
        ("c2", "localization"),
        ("c2", "list"),
    }
    assert (back["condition"] == EXCLUDED).sum() == 1


@FAST
@given(IDS, st.data())
def test_check_gathered_rejects_a_duplicated_or_missing_item(ids, data):
    check_gathered(list(ids), ids, "samples")
    k = data.draw(st.integers(0, len(ids) - 1))
    with pytest.raises(ValueError, match="more than once"):
        check_gathered([*ids, ids[k]], ids, "samples")
    with pytest.raises(ValueError, match="missing"):
        check_gathered(ids[:k] + ids[k + 1 :], ids, "samples")
    with pytest.raises(
        ValueError, match="not expected"
    ):  # an id from another subset (a mutant survived without it)
        check_gathered([*ids, "not-a-sample-id"], ids, "samples")
