import numpy as np
import pandas as pd
import pytest

from vlmloc.experiments.screening import ANSWER_COLUMNS, run_screening
from vlmloc.experiments.screening_summary import (
    baseline_accuracy,
    counts_table,
    false_positive_rates,
    hallucination_filter,
    probing_subset,
)
from vlmloc.runner import Answer
from vlmloc.scoring import score_answer

CATS = ["red circle", "blue square", "green triangle"]


def _samples(n=4):
    return pd.DataFrame(
        {"sample_id": [f"{i}_{i}0" for i in range(n)], "image_id": [i // 2 for i in range(n)],
         "category": [CATS[i % 3] for i in range(n)], "width": 200, "height": 100,
         "bbox_x": 20.0, "bbox_y": 10.0, "bbox_w": 60.0, "bbox_h": 40.0,
         "image_path": [f"orig{i}.png" for i in range(n)]}
    )  # fmt: skip


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_score_answer(adapters, family):
    a = adapters[family]
    row = _samples().iloc[0].to_dict()
    exact = a.format_box((20, 10, 80, 50), 200, 100)
    s = score_answer(a, "localization", f"Sure: {exact}", row, CATS)
    assert s["status"] == "ok" and s["iou"] > 0.95 and s["loc_score"] == 1.0 and s["n_boxes"] == 1
    box = (s["pred_x1"], s["pred_y1"], s["pred_x2"], s["pred_y2"])
    assert box == pytest.approx((20, 10, 80, 50), abs=1.0)  # the parsed box in pixels, each corner where it belongs
    s = score_answer(a, "localization", "no idea", row, CATS)
    assert s["status"] == "unparsed" and s["loc_score"] == 0.0 and np.isnan(s["iou"])
    assert score_answer(a, "list", "red circle, blue square", row, CATS)["identified"] == 1.0
    assert score_answer(a, "list", "blue square", row, CATS)["identified"] == 0.0
    assert score_answer(a, "binary", "Yes.", row, CATS)["identified"] == 1.0
    assert score_answer(a, "binary", "Hmm", row, CATS)["status"] == "unparsed"


class ScriptedRunner:
    """Answers from a function of (image, prompt): lets tests pin what the 'model' says."""

    def __init__(self, adapter, answer):
        self.adapter, self.answer, self.calls = adapter, answer, []

    def generate_conditions(self, images, prompts, max_new_tokens, interventions, desc=""):
        self.calls.append((desc, tuple(max_new_tokens)))
        return [[[self.answer(im, p) for im, p in zip(images, ps, strict=True)] for ps in prompts] for _ in interventions]


def test_run_screening_keeps_every_answer(adapters):
    samples = _samples()
    removed = pd.DataFrame({"sample_id": samples["sample_id"], "removed_path": [f"rem{i}.png" for i in range(4)]})

    def answer(image, prompt):
        if "Is there" in prompt:
            return "Yes" if image.startswith("orig") else "No"
        if "List" in prompt:
            return "red circle" if image.startswith("orig") else "\u2603 garbled"
        return Answer("[0.1, 0.2", truncated=True)  # unparseable box: the model ran out of tokens

    runner = ScriptedRunner(adapters["llava"], answer)
    rows = run_screening(runner, samples, removed, CATS, {"localization": 9, "list": 8, "binary": 7})
    assert set(ANSWER_COLUMNS) <= set(rows.columns) and len(rows) == 4 * 2 * 3
    assert (rows.loc[rows["task"] == "localization", "status"] == "unparsed").all()
    assert rows["truncated"].tolist() == (rows["task"] == "localization").tolist()
    assert rows["answer"].str.contains("\u2603").sum() == 4  # raw text kept
    assert ("original", (9, 8, 7)) in runner.calls
    kept = hallucination_filter(rows, "binary")
    assert kept["kept"].all()
    kept_list = hallucination_filter(rows, "list")  # only the red circles are named on the original
    assert list(kept_list.loc[kept_list["kept"], "sample_id"]) == ["0_00", "3_30"]


def _answers(ids, orig_yes, rem_yes):
    rows = []
    for sid, o, r in zip(ids, orig_yes, rem_yes, strict=True):
        for cond, y in (("original", o), ("removed", r)):
            rows.append({"sample_id": sid, "condition": cond, "task": "binary", "identified": float(y)})
            rows.append({"sample_id": sid, "condition": cond, "task": "list", "identified": float(y and cond == "original")})
            rows.append({"sample_id": sid, "condition": cond, "task": "localization", "identified": np.nan,
                         "loc_score": 1.0 if o else 0.0, "status": "ok",
                         **{f"success@{t}": float(o) for t in (0.5, 0.7, 0.9)}})  # fmt: skip
    return pd.DataFrame(rows)


def test_filter_intersection_and_tables():
    samples = _samples(4)
    ids = list(samples["sample_id"])
    a = _answers(ids, [1, 1, 1, 0], [0, 1, 0, 0])  # model a keeps 0, 2
    b = _answers(ids, [1, 0, 1, 1], [0, 0, 0, 0])  # model b keeps 0, 2, 3
    kept = {"a": hallucination_filter(a), "b": hallucination_filter(b)}
    assert list(kept["a"].loc[kept["a"]["kept"], "sample_id"]) == [ids[0], ids[2]]
    subset = probing_subset(samples, kept)
    assert list(subset["sample_id"]) == [ids[0], ids[2]]
    counts = counts_table("coco", samples, kept, subset)
    assert list(counts["annotations"]) == [4, 2, 3, 2] and list(counts["images"]) == [2, 2, 2, 2]
    assert counts["paper_annotations"].iloc[-1] == 2248 and counts["paper_images"].iloc[0] == 3560
    acc = baseline_accuracy({"a": a, "b": b}, subset, {"a": "llava-1.5-7b"})
    sub_a = acc[(acc["model"] == "a") & (acc["samples"] == "probing subset")].iloc[0]
    assert sub_a["loc_score"] == 100.0 and sub_a["cls"] == 100.0 and sub_a["paper_loc"] == 35.34
    fpr = false_positive_rates({"a": a, "b": b}).set_index("model")
    assert fpr.loc["a", "fpr_binary"] == 0.25 and fpr.loc["a", "fpr_list"] == 0.0


def test_empty_inputs_give_valid_empty_tables():
    samples = _samples(2)
    empty = run_screening(None, samples.iloc[:0], pd.DataFrame(columns=["sample_id", "removed_path"]), CATS, {})
    assert list(empty.columns) == ANSWER_COLUMNS and empty.empty
    kept = {"m": hallucination_filter(empty)}
    subset = probing_subset(samples, kept)
    assert subset.empty
    assert counts_table("shapes", samples, kept, subset)["annotations"].tolist() == [2, 0, 0]
    assert len(baseline_accuracy({"m": empty}, subset, {})) == 2


def _binary(ids, orig, rem):
    """Binary answer rows built by hand: 1 yes, 0 no, None unparsed (NaN)."""
    rows = [{"sample_id": sid, "condition": cond, "task": "binary", "identified": np.nan if y is None else float(y)}
            for sid, o, r in zip(ids, orig, rem, strict=True) for cond, y in (("original", o), ("removed", r))]  # fmt: skip
    return pd.DataFrame(rows)


def test_unparsed_binary_reply_is_unknown(adapters):
    row = _samples().iloc[0].to_dict()
    assert np.isnan(score_answer(adapters["llava"], "binary", "Hmm", row, CATS)["identified"])


def test_filter_drops_what_it_must():
    ids = ["keep", "seen_removed", "missed_original", "unknown_removed", "unknown_original", "keep2"]
    kept = hallucination_filter(_binary(ids, [1, 1, 0, 1, None, 1], [0, 1, 0, None, 0, 0])).set_index("sample_id")
    assert kept["kept"].to_dict() == {"keep": True, "seen_removed": False, "missed_original": False,
                                      "unknown_removed": False, "unknown_original": False, "keep2": True}  # fmt: skip
    assert kept.loc["unknown_removed", "reason"] == "unknown on the removed image"
    assert kept.loc["unknown_original", "reason"] == "unknown on the original"
    assert kept.loc["seen_removed", "reason"] == "identified on the removed image"
    assert kept.loc["missed_original", "reason"] == "not identified on the original"


def test_filter_drops_a_sample_without_a_removed_reply():
    answers = _binary(["a", "b"], [1, 1], [0, 0])
    kept = hallucination_filter(answers[~((answers["sample_id"] == "b") & (answers["condition"] == "removed"))])
    assert kept.set_index("sample_id")["kept"].to_dict() == {"a": True, "b": False}


def test_unknowns_are_counted_and_fpr_is_over_parsed_replies():
    samples = _samples(4)
    ids = list(samples["sample_id"])
    answers = _binary(ids, [1, 1, 1, 1], [0, None, 1, None])
    kept = {"m": hallucination_filter(answers)}
    counts = counts_table("coco", samples, kept, probing_subset(samples, kept))
    assert counts["annotations"].tolist() == [4, 1, 1]
    assert counts["excluded_unknown"].tolist()[1] == 2 and counts["excluded_unknown"].isna().tolist() == [True, False, True]
    fpr = false_positive_rates({"m": answers}).iloc[0]
    assert fpr["fpr_binary"] == 0.5 and fpr["unparsed_binary"] == 2 and fpr["n"] == 4


def test_baseline_figure_draws_no_bar_for_an_unknown_accuracy(tmp_path, monkeypatch):
    """A NaN accuracy (no parsed reply) is drawn as no bar, never as a 0% bar."""
    import matplotlib.pyplot as plt

    from vlmloc.figures import screening_figures

    figures, close = [], plt.close
    monkeypatch.setattr(screening_figures.plt, "close", lambda fig: figures.append(fig) or close(fig))
    table = pd.DataFrame([{"model": "m", "samples": "probing subset", "n": 3, "success@0.5": 50.0, "success@0.7": 0.0,
                           "success@0.9": 0.0, "loc_score": 16.7, "cls": np.nan, "paper_loc": np.nan, "paper_cls": np.nan}])  # fmt: skip
    screening_figures.baseline_accuracy(table, tmp_path / "b.png")
    heights = [p.get_height() for p in figures[0].axes[0].patches]
    assert heights[:4] == [50.0, 0.0, 0.0, 16.7] and np.isnan(heights[4])


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_every_scored_row_has_every_column_and_its_cut_off_flag(adapters, family):
    """The columns a list or binary row does not fill keep their neutral values, and a reply cut
    off at max_new_tokens says so (mutants that renamed or flipped them survived before)."""
    from vlmloc.runner import Answer

    a = adapters[family]
    row = _samples().iloc[0].to_dict()
    columns = {"truncated", "status", "n_boxes", "pred_x1", "pred_y1", "pred_x2", "pred_y2", "iou", "identified", "loc_score"}
    for task, reply in (("list", "red circle"), ("binary", "Yes"), ("localization", "no idea")):
        plain = score_answer(a, task, reply, row, CATS)
        assert columns <= set(plain) and plain["truncated"] is False
        assert score_answer(a, task, Answer(reply, truncated=True), row, CATS)["truncated"] is True
        if task != "localization":
            assert plain["status"] == "ok" and plain["n_boxes"] == 0
            assert all(np.isnan(plain[c]) for c in ("pred_x1", "pred_y1", "pred_x2", "pred_y2", "iou", "loc_score"))


def test_the_list_score_passes_the_dataset_categories_to_the_name_match(adapters):
    """"dog" is not named by "hot dog" when both are categories: score_answer must hand the
    dataset's categories to ``mentions`` (a mutant that dropped them survived)."""
    a = adapters["llava"]
    row = {**_samples().iloc[0].to_dict(), "category": "dog"}
    assert score_answer(a, "list", "a hot dog", row, ["dog", "hot dog"])["identified"] == 0.0
    assert score_answer(a, "list", "a hot dog and a dog", row, ["dog", "hot dog"])["identified"] == 1.0
