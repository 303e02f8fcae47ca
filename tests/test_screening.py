import numpy as np
import pandas as pd
import pytest

from vlmloc.experiments.screening import ANSWER_COLUMNS, run_screening
from vlmloc.runner import Answer
from vlmloc.scoring import score_answer
from vlmloc.tables.screening import (
    baseline_accuracy,
    counts_table,
    false_positive_rates,
    hallucination_filter,
    probing_subset,
)

CATS = ["red circle", "blue square", "green triangle"]


def _samples(n=4):
    return pd.DataFrame(
        {
            "sample_id": [f"{i}_{i}0" for i in range(n)],
            "image_id": [i // 2 for i in range(n)],
            "category": [CATS[i % 3] for i in range(n)],
            "width": 200,
            "height": 100,
            "bbox_x": 20.0,
            "bbox_y": 10.0,
            "bbox_w": 60.0,
            "bbox_h": 40.0,
            "image_path": [f"orig{i}.png" for i in range(n)],
        }
    )


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_score_answer(adapters, family):
    a = adapters[family]
    row = _samples().iloc[0].to_dict()
    exact = a.format_box((20, 10, 80, 50), 200, 100)
    s = score_answer(a, "localization", f"Sure: {exact}", row, CATS)
    assert s["status"] == "ok" and s["iou"] > 0.95 and s["loc_score"] == 1.0 and s["n_boxes"] == 1
    box = (s["pred_x1"], s["pred_y1"], s["pred_x2"], s["pred_y2"])
    assert box == pytest.approx(
        (20, 10, 80, 50), abs=1.0
    )  # the parsed box in pixels, each corner where it belongs
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
        return [
            [[self.answer(im, p) for im, p in zip(images, ps, strict=True)] for ps in prompts]
            for _ in interventions
        ]


def test_run_screening_keeps_every_answer(adapters):
    samples = _samples()
    removed = pd.DataFrame(
        {"sample_id": samples["sample_id"], "removed_path": [f"rem{i}.png" for i in range(4)]}
    )

    def answer(image, prompt):
        if "Is there" in prompt:
            return "Yes" if image.startswith("orig") else "No"
        if "List" in prompt:
            return "red circle" if image.startswith("orig") else "\u2603 garbled"
        return Answer("[0.1, 0.2", truncated=True)  # unparseable box: the model ran out of tokens

    runner = ScriptedRunner(adapters["llava"], answer)
    rows = run_screening(
        runner, samples, removed, CATS, {"localization": 9, "list": 8, "binary": 7}
    )
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
            rows.append(
                {"sample_id": sid, "condition": cond, "task": "binary", "identified": float(y)}
            )
            rows.append(
                {
                    "sample_id": sid,
                    "condition": cond,
                    "task": "list",
                    "identified": float(y and cond == "original"),
                }
            )
            rows.append(
                {
                    "sample_id": sid,
                    "condition": cond,
                    "task": "localization",
                    "identified": np.nan,
                    "loc_score": 1.0 if o else 0.0,
                    "status": "ok",
                    **{f"success@{t}": float(o) for t in (0.5, 0.7, 0.9)},
                }
            )
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
    empty = run_screening(
        None, samples.iloc[:0], pd.DataFrame(columns=["sample_id", "removed_path"]), CATS, {}
    )
    assert list(empty.columns) == ANSWER_COLUMNS and empty.empty
    kept = {"m": hallucination_filter(empty)}
    subset = probing_subset(samples, kept)
    assert subset.empty
    assert counts_table("shapes", samples, kept, subset)["annotations"].tolist() == [2, 0, 0]
    assert len(baseline_accuracy({"m": empty}, subset, {})) == 2


def _binary(ids, orig, rem):
    """Binary answer rows built by hand: 1 yes, 0 no, None unparsed (NaN)."""
    rows = [
        {
            "sample_id": sid,
            "condition": cond,
            "task": "binary",
            "identified": np.nan if y is None else float(y),
        }
        for sid, o, r in zip(ids, orig, rem, strict=True)
        for cond, y in (("original", o), ("removed", r))
    ]
    return pd.DataFrame(rows)


def test_unparsed_binary_reply_is_unknown(adapters):
    row = _samples().iloc[0].to_dict()
    assert np.isnan(score_answer(adapters["llava"], "binary", "Hmm", row, CATS)["identified"])


def test_filter_drops_what_it_must():
    ids = [
        "keep",
        "seen_removed",
        "missed_original",
        "unknown_removed",
        "unknown_original",
        "keep2",
    ]
    kept = hallucination_filter(
        _binary(ids, [1, 1, 0, 1, None, 1], [0, 1, 0, None, 0, 0])
    ).set_index("sample_id")
    assert kept["kept"].to_dict() == {
        "keep": True,
        "seen_removed": False,
        "missed_original": False,
        "unknown_removed": False,
        "unknown_original": False,
        "keep2": True,
    }
    assert kept.loc["unknown_removed", "reason"] == "unknown on the removed image"
    assert kept.loc["unknown_original", "reason"] == "unknown on the original"
    assert kept.loc["seen_removed", "reason"] == "identified on the removed image"
    assert kept.loc["missed_original", "reason"] == "not identified on the original"


def test_filter_drops_a_sample_without_a_removed_reply():
    answers = _binary(["a", "b"], [1, 1], [0, 0])
    kept = hallucination_filter(
        answers[~((answers["sample_id"] == "b") & (answers["condition"] == "removed"))]
    )
    assert kept.set_index("sample_id")["kept"].to_dict() == {"a": True, "b": False}


def test_unknowns_are_counted_and_fpr_is_over_parsed_replies():
    samples = _samples(4)
    ids = list(samples["sample_id"])
    answers = _binary(ids, [1, 1, 1, 1], [0, None, 1, None])
    kept = {"m": hallucination_filter(answers)}
    counts = counts_table("coco", samples, kept, probing_subset(samples, kept))
    assert counts["annotations"].tolist() == [4, 1, 1]
    assert counts["excluded_unknown"].tolist()[1] == 2 and counts[
        "excluded_unknown"
    ].isna().tolist() == [True, False, True]
    fpr = false_positive_rates({"m": answers}).iloc[0]
    assert fpr["fpr_binary"] == 0.5 and fpr["unparsed_binary"] == 2 and fpr["n"] == 4


def test_baseline_figure_draws_no_bar_for_an_unknown_accuracy(tmp_path, monkeypatch):
    """A NaN accuracy (no parsed reply) is drawn as no bar, never as a 0% bar."""
    import matplotlib.pyplot as plt

    from vlmloc.figures import screening_figures

    figures, close = [], plt.close
    monkeypatch.setattr(
        screening_figures.plt, "close", lambda fig: figures.append(fig) or close(fig)
    )
    table = pd.DataFrame(
        [
            {
                "model": "m",
                "samples": "probing subset",
                "n": 3,
                "success@0.5": 50.0,
                "success@0.7": 0.0,
                "success@0.9": 0.0,
                "loc_score": 16.7,
                "cls": np.nan,
                "paper_loc": np.nan,
                "paper_cls": np.nan,
            }
        ]
    )
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
    columns = {
        "truncated",
        "status",
        "n_boxes",
        "pred_x1",
        "pred_y1",
        "pred_x2",
        "pred_y2",
        "iou",
        "identified",
        "loc_score",
    }
    for task, reply in (("list", "red circle"), ("binary", "Yes"), ("localization", "no idea")):
        plain = score_answer(a, task, reply, row, CATS)
        assert columns <= set(plain) and plain["truncated"] is False
        assert score_answer(a, task, Answer(reply, truncated=True), row, CATS)["truncated"] is True
        if task != "localization":
            assert plain["status"] == "ok" and plain["n_boxes"] == 0
            assert all(
                np.isnan(plain[c])
                for c in ("pred_x1", "pred_y1", "pred_x2", "pred_y2", "iou", "loc_score")
            )


def test_the_list_score_passes_the_dataset_categories_to_the_name_match(adapters):
    """ "dog" is not named by "hot dog" when both are categories: score_answer must hand the
    dataset's categories to ``mentions`` (a mutant that dropped them survived)."""
    a = adapters["llava"]
    row = {**_samples().iloc[0].to_dict(), "category": "dog"}
    assert score_answer(a, "list", "a hot dog", row, ["dog", "hot dog"])["identified"] == 0.0
    assert (
        score_answer(a, "list", "a hot dog and a dog", row, ["dog", "hot dog"])["identified"] == 1.0
    )


def test_filter_lists_only_samples_answered_on_the_original():
    """One row per sample the original image was asked about: a reply on the removed image alone
    adds no row (and so no 'unknown' to the counts), and every reason is spelled out."""
    answers = _binary(["a", "b", "c"], [1, 0, 1], [0, 0, 1])
    answers = pd.concat([answers, _binary(["only_removed"], [0], [0]).iloc[1:]], ignore_index=True)
    kept = hallucination_filter(answers)
    assert kept["sample_id"].tolist() == ["a", "b", "c"]
    assert kept["reason"].tolist() == [
        "kept",
        "not identified on the original",
        "identified on the removed image",
    ]
    assert kept["identified_removed"].tolist() == [0.0, 0.0, 1.0]


def test_probing_subset_is_the_intersection_and_keeps_the_sample_columns():
    samples = _samples(6).iloc[::-1]  # any order in, the samples' own order out
    ids = list(samples["sample_id"])
    kept = {
        m: pd.DataFrame({"sample_id": ids, "kept": [i in k for i in range(6)]})
        for m, k in (("a", {0, 1, 2, 4}), ("b", {1, 2, 3, 4}), ("c", {0, 2, 4, 5}))
    }
    subset = probing_subset(samples, kept)
    assert subset["sample_id"].tolist() == [ids[2], ids[4]]
    assert list(subset.columns) == list(samples.columns) and subset.index.tolist() == [0, 1]
    assert (
        probing_subset(samples, {})["sample_id"].tolist() == ids
    )  # no model: nothing filtered out


def test_counts_table_counts_each_stage_exactly():
    samples = _samples(6)  # images 0, 0, 1, 1, 2, 2
    ids = list(samples["sample_id"])
    a = _binary(ids, [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0])  # keeps images 0 and 1 (3 samples)
    b = _binary(ids, [1, 1, None, 1, 1, 1], [0, 0, 0, None, 0, 1])  # keeps 0, 1, 4 (images 0, 2)
    kept = {"a": hallucination_filter(a), "b": hallucination_filter(b)}
    subset = probing_subset(samples, kept)
    counts = counts_table("coco", samples, kept, subset)
    assert list(counts.columns) == [
        "step",
        "annotations",
        "images",
        "excluded_unknown",
        "paper_annotations",
        "paper_images",
    ]
    assert counts["step"].tolist() == [
        "filtered samples",
        "hallucination filter: a",
        "hallucination filter: b",
        "probing subset (intersection)",
    ]
    assert counts["annotations"].tolist() == [6, 3, 3, 2] and counts["images"].tolist() == [
        3,
        2,
        2,
        1,
    ]
    assert counts["excluded_unknown"].dtype == "Int64" and counts["excluded_unknown"].tolist() == [
        pd.NA,
        0,
        2,
        pd.NA,
    ]
    assert counts["paper_annotations"].dtype == "Int64" and counts["paper_images"].dtype == "Int64"
    assert counts["paper_annotations"].tolist() == [6403, pd.NA, pd.NA, 2248]
    assert counts["paper_images"].tolist() == [3560, pd.NA, pd.NA, 1720]
    shapes = counts_table("shapes", samples, kept, subset)  # no published numbers for this dataset
    assert shapes["paper_annotations"].dtype == "Int64" and shapes["paper_annotations"].isna().all()
    assert shapes["paper_images"].dtype == "Int64" and shapes["paper_images"].isna().all()
    voc = counts_table(
        "voc", samples, kept, subset
    )  # filtered counts published, probing subset not
    assert voc["paper_annotations"].tolist() == [1957, pd.NA, pd.NA, pd.NA]
    none = counts_table("coco", samples, {}, samples)  # no model: the same columns, no unknowns
    assert list(none.columns) == list(counts.columns) and none["excluded_unknown"].isna().all()
    assert none["step"].tolist() == ["filtered samples", "probing subset (intersection)"]


def _scored(ids, loc, lst, binary, status, truncated):
    """Original-image rows as score_answer writes them: loc = (loc_score, success@0.5, @0.7, @0.9)
    per sample; a removed-image copy with opposite values must not count."""
    rows = []
    for sid, (score, *hits), li, bi, st, tr in zip(
        ids, loc, lst, binary, status, truncated, strict=True
    ):
        for cond in ("original", "removed"):
            flip = cond == "removed"
            rows.append(
                {
                    "sample_id": sid,
                    "condition": cond,
                    "task": "localization",
                    "identified": np.nan,
                    "loc_score": 1 - score if flip else score,
                    "status": st,
                    "truncated": tr,
                    **{
                        f"success@{t}": float(h != flip)
                        for t, h in zip((0.5, 0.7, 0.9), hits, strict=True)
                    },
                }
            )
            rows.append(
                {
                    "sample_id": sid,
                    "condition": cond,
                    "task": "list",
                    "identified": float(li != flip),
                    "truncated": np.nan,
                }
            )
            rows.append(
                {
                    "sample_id": sid,
                    "condition": cond,
                    "task": "binary",
                    "identified": float(bi != flip),
                    "truncated": False,
                }
            )
    return pd.DataFrame(rows)


def test_baseline_accuracy_numbers_on_a_built_case():
    ids = ["s0", "s1", "s2", "s3"]
    ans = _scored(
        ids,
        loc=[(1.0, 1, 1, 1), (1 / 3, 1, 0, 0), (0.0, 0, 0, 0), (2 / 3, 1, 1, 0)],
        lst=[1, 0, 1, 1],
        binary=[1, 1, 0, 0],
        status=["ok", "ok", "unparsed", "ok"],
        truncated=[False, False, True, False],
    )
    subset = pd.DataFrame({"sample_id": ["s0", "s1"]})
    acc = baseline_accuracy(
        {"a": ans, "u": ans.drop(columns="truncated")}, subset, {"a": "llava-1.5-7b"}
    )
    assert acc[["model", "samples"]].values.tolist() == [
        ["a", "probing subset"],
        ["a", "all filtered"],
        ["u", "probing subset"],
        ["u", "all filtered"],
    ]
    sub, full = acc.iloc[0], acc.iloc[1]
    assert sub["n"] == 2 and full["n"] == 4
    assert sub["loc_score"] == pytest.approx(200 / 3) and full["loc_score"] == pytest.approx(50.0)
    assert [sub[f"success@{t}"] for t in (0.5, 0.7, 0.9)] == [100.0, 50.0, 50.0]
    assert [full[f"success@{t}"] for t in (0.5, 0.7, 0.9)] == [75.0, 50.0, 25.0]
    assert sub["cls"] == 50.0 and full["cls"] == 75.0  # the list query, not the binary one
    assert sub["unparsed_boxes"] == 0 and full["unparsed_boxes"] == 1
    assert (
        sub["truncated"] == 0 and full["truncated"] == 1
    )  # an unknown flag (NaN) is not a cut-off
    assert acc.loc[acc["model"] == "u", "truncated"].tolist() == [0, 0]  # answers without the flag
    as_float = baseline_accuracy(
        {"f": ans.assign(truncated=ans["truncated"].astype(float))}, subset, {}
    )
    assert as_float["truncated"].tolist() == [0, 1]  # the flag read back as 0.0 / 1.0 / NaN
    assert (
        sub["paper_loc"] == 35.34 and sub["paper_cls"] == 58.10
    )  # Table 1 on the probing subset only
    assert acc[["paper_loc", "paper_cls"]].drop(index=0).isna().all().all()
    unmapped = baseline_accuracy({"u": ans}, subset, {})
    assert unmapped["paper_loc"].dtype == float and unmapped["paper_cls"].dtype == float
    assert unmapped[["paper_loc", "paper_cls"]].isna().all().all()


def test_false_positive_rates_over_parsed_replies_with_unparsed_beside():
    answers = pd.DataFrame(
        [
            {"sample_id": f"s{i}", "condition": "removed", "task": task, "identified": y}
            for task, ys in (("list", [1.0, np.nan, 0.0, 0.0]), ("binary", [1.0, 1.0, np.nan, 0.0]))
            for i, y in enumerate(ys)
        ]
        + [{"sample_id": "s0", "condition": "original", "task": "list", "identified": 1.0}]
    )
    fpr = false_positive_rates({"m": answers, "none": answers.assign(identified=np.nan)}).set_index(
        "model"
    )
    assert fpr.loc["m", "fpr_list"] == pytest.approx(1 / 3) and fpr.loc["m", "unparsed_list"] == 1
    assert (
        fpr.loc["m", "fpr_binary"] == pytest.approx(2 / 3) and fpr.loc["m", "unparsed_binary"] == 1
    )
    assert fpr.loc["m", "n"] == 4
    assert np.isnan(fpr.loc["none", "fpr_list"]) and fpr.loc["none", "unparsed_list"] == 4
    assert (
        fpr.loc["m", "paper_fpr_list"] == "0.27-0.45"
        and fpr.loc["m", "paper_fpr_binary"] == "0.56-0.70"
    )
