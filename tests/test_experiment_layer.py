"""The experiment layer and the token-ablation conditions on tiny random models: what each
condition edits, IG's completeness and targets, the random control's counts, the gather guard."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from vlmloc.attribution import gold_answer, integrated_gradients, target_tokens
from vlmloc.data.coco import encode_mask
from vlmloc.experiments import ShardJob, get_experiment, run_shard
from vlmloc.experiments.base import sample_rng, share_count
from vlmloc.experiments.token_ablation import random_indices_like, top_indices
from vlmloc.geometry import object_token_indices
from vlmloc.interventions import BatchContext, mean_visual_embedding
from vlmloc.runner import Runner
from vlmloc.scoring import check_complete, score_rows
from vlmloc.tasks import task_prompt

CATS = ["red circle", "blue square", "green triangle"]
MAX_NEW = {"localization": 6, "list": 5, "binary": 2}


def _samples(tmp_path, sizes=((160, 120), (90, 200), (300, 100))):
    rows = []
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        path = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        mask = np.zeros((h, w), dtype=bool)
        x0, y0 = w // 4, h // 3
        mask[y0 : y0 + h // 4, x0 : x0 + w // 5] = True
        ys, xs = np.nonzero(mask)
        rows.append(
            {
                "sample_id": f"s{i}",
                "image_id": i,
                "category": CATS[i % 3],
                "image_path": str(path),
                "width": w,
                "height": h,
                "bbox_x": float(xs.min()),
                "bbox_y": float(ys.min()),
                "bbox_w": float(xs.max() + 1 - xs.min()),
                "bbox_h": float(ys.max() + 1 - ys.min()),
                "size_bucket": "small",
                "mask_rle": encode_mask(mask)["counts"],
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture
def samples(tmp_path):
    return _samples(tmp_path)


def _job(adapter, samples, settings, mean=None):
    if mean is None:
        mean = mean_visual_embedding(adapter, list(samples["image_path"]))
    runner = Runner(adapter, batch_size=4, progress=False)
    present = [[c] for c in samples["category"]]
    return ShardJob(
        adapter,
        runner,
        samples,
        CATS,
        settings,
        MAX_NEW,
        mean,
        {"norm_mean": 0.0, "norm_std": 1.0},
        present,
        progress=False,
    )


SETTINGS = {
    "paddings": [0, 1],
    "register": {"n_std": 2.0, "scope": "image"},
    "random": {"k": [4, 24], "seeds": [0, 1]},
    "integrated_gradients": {
        "k": [8],
        "steps": 8,
        "target": "logit",
        "importance": "l1",
        "method": "riemann_trapezoid",
    },
}


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_object_condition_edits_exactly_the_object_tokens(adapters, samples, family):
    """padding 0 = the geometry's object tokens (every view), set to the mean, nothing else."""
    a = adapters[family]
    job = _job(a, samples, SETTINGS)
    cond = next(c for c in get_experiment("token_ablation").conditions(job) if c.name == "object+0")
    enc = a.encode(
        [Image.open(p).convert("RGB") for p in samples["image_path"]], ["Hi"] * len(samples)
    )
    sizes = [lay.n_tokens for lay in enc.layouts]
    with torch.inference_mode():
        ref = a.image_features(enc.inputs["pixel_values"])
        with cond.intervention(a, BatchContext.of(enc)):
            got = a.image_features(enc.inputs["pixel_values"])
    for q, (lo, n) in enumerate(zip(np.cumsum([0, *sizes[:-1]]), sizes, strict=True)):
        expected = object_token_indices(enc.layouts[q], _mask(samples.iloc[q]))
        assert len(expected) > 0 and np.array_equal(cond.edited[q], expected)
        changed = torch.nonzero((got[lo : lo + n] != ref[lo : lo + n]).any(-1)).flatten().numpy()
        assert np.array_equal(changed, expected), (family, q)
        torch.testing.assert_close(got[lo + expected], job.mean.expand(len(expected), -1))
    if family == "internvl":  # every view, global and local
        wide = enc.layouts[2]
        kinds = {
            v.kind
            for v in wide.views
            for i in cond.edited[2]
            if v.offset <= i < v.offset + v.n_tokens
        }
        assert kinds == {"global", "local"}


def _mask(row):
    from vlmloc.data.filtering import sample_mask

    return sample_mask(row)


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_suffix_phase_is_a_no_op_and_hooks_are_removed(adapters, samples, family):
    a = adapters[family]
    job = _job(a, samples, SETTINGS)
    cond = next(c for c in get_experiment("token_ablation").conditions(job) if c.name == "object+1")
    enc = a.encode([Image.open(samples["image_path"][0]).convert("RGB")], ["Hi"])
    before = dict(a.projector._forward_hooks)
    with cond.intervention(a, BatchContext.of(enc, "suffix", 10)):
        assert dict(a.projector._forward_hooks) == before
    with cond.intervention(a, BatchContext.of(enc, "prefix")):
        assert len(a.projector._forward_hooks) == len(before) + 1
    assert dict(a.projector._forward_hooks) == before


def test_random_control_draws_the_count_asked(adapters, samples):
    a = adapters["internvl"]
    counts = [1, 7, 40]
    for seed in (0, 1):
        idx = random_indices_like(a, samples, counts, seed)
        assert [len(set(i)) for i in idx] == counts
        assert all(
            i.max() < a.layout(w, h).n_tokens
            for i, w, h in zip(idx, samples["width"], samples["height"], strict=True)
        )
    assert not all(
        np.array_equal(x, y)
        for x, y in zip(
            random_indices_like(a, samples, counts, 0),
            random_indices_like(a, samples, counts, 1),
            strict=True,
        )
    )
    # a sample's draw does not depend on which samples share its shard
    alone = random_indices_like(a, samples.iloc[[2]], [40], 0)[0]
    assert np.array_equal(alone, random_indices_like(a, samples, counts, 0)[2])
    assert (
        share_count(576, 1) == 6
        and share_count(576, 48) == 276
        and share_count(64, 1) == 1
        and share_count(10, 25) == 3
    )
    assert sample_rng(0, "x").integers(1000) == sample_rng(0, "x").integers(1000)


def test_top_indices_takes_the_largest():
    assert list(top_indices(np.array([0.1, 5.0, 0.3, 5.0, 2.0]), 3)) == [1, 3, 4]


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_ig_targets_are_the_gold_answer_content_tokens(adapters, samples, family):
    a = adapters[family]
    r = samples.iloc[0].to_dict()
    n = a.layout(r["width"], r["height"]).n_tokens
    for task in ("localization", "list"):
        prompt = a.prompt(task_prompt(task, r["category"], CATS), n)
        gold = gold_answer(
            a, task, r, ["blue square", r["category"], "green triangle"] if task == "list" else ()
        )
        positions, ids = target_tokens(a, prompt, gold)
        text = a.tokenizer.decode(ids[positions])
        prompt_len = len(a.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        assert min(positions) >= prompt_len - 1  # in the answer, never BOS or the prompt
        assert a.tokenizer.bos_token_id not in ids[positions].tolist()
        if task == "localization":
            numbers = [  # without LLaVA's "0." unless box_leading_zero says content
                s.removeprefix("0.") if a.box_leading_zero == "template" else s
                for s in gold.text.replace("[", " ").replace("]", " ").replace(",", " ").split()
                if s[0].isdigit()
            ]
            assert text.replace(" ", "") == "".join(numbers), (text, gold.text)
        else:
            assert text.strip() == r["category"], (text, gold.text)
            assert "," not in text and "square" not in text


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_ig_completeness(adapters, samples, family):
    """Attributions sum to f(input) - f(baseline): within 0.5% at 64 steps on the tiny models
    (measured: under 0.06%; captum's trapezoid weights uncorrected would be short by 1/64 = 1.6%)."""
    a = adapters[family]
    mean = mean_visual_embedding(a, list(samples["image_path"]))
    for r in samples.to_dict("records")[:2]:
        n = a.layout(r["width"], r["height"]).n_tokens
        px = a.pixel_values(Image.open(r["image_path"]).convert("RGB"))
        for task in ("localization", "list"):
            prompt = a.prompt(task_prompt(task, r["category"], CATS), n)
            at = integrated_gradients(a, px, prompt, gold_answer(a, task, r), mean, steps=64)
            assert abs(at.f_input - at.f_baseline) > 1e-3
            assert at.relative_gap < 0.005, (family, task, at)
            assert at.importance.shape == (n,) and (at.importance >= 0).all()
            at4 = integrated_gradients(
                a, px, prompt, gold_answer(a, task, r), mean, steps=4, method="riemann_left"
            )
            assert (
                at4.relative_gap > at.relative_gap
            )  # few steps do not integrate this path: the test can fail


def test_run_shard_rows_and_gather_guard(adapters, samples):
    a = adapters["llava"]
    job = _job(a, samples, SETTINGS)
    raw = run_shard(get_experiment("token_ablation"), job)
    conds = set(raw["condition"])
    assert conds == {
        "baseline",
        "object+0",
        "object+1",
        "register",
        "random_k4_s0",
        "random_k4_s1",
        "random_k24_s0",
        "random_k24_s1",
        "ig_localization_k8",
        "ig_list_k8",
    }
    assert set(raw.loc[raw["condition"] == "ig_list_k8", "task"]) == {"list"}
    assert (raw.loc[raw["condition"] == "baseline", "n_edited"] == 0).all()
    r24 = raw[raw["condition"] == "random_k24_s0"]
    assert (r24["n_edited"] == [share_count(n, 24) for n in r24["n_tokens"]]).all()
    check_complete(raw, samples["sample_id"])
    with pytest.raises(ValueError, match="missing"):
        check_complete(raw[raw["sample_id"] != "s1"], samples["sample_id"])
    with pytest.raises(ValueError, match="repeat"):
        check_complete(pd.concat([raw, raw.iloc[[5]]]), samples["sample_id"])
    with pytest.raises(ValueError, match="not in the probing subset"):
        check_complete(raw, samples["sample_id"][:2])
    scored = score_rows(raw, samples, "llava", CATS)
    assert len(scored) == len(raw) and {"loc_score", "identified", "status"} <= set(scored.columns)
    assert scored.loc[scored["task"] == "localization", "loc_score"].notna().all()


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_fast_path_equals_the_naive_reference(adapters, samples, family):
    """Batched, shared-prefix conditions give the answers of one generate per sample and task."""
    from vlmloc.experiments.base import run_conditions
    from vlmloc.experiments.reference import run_conditions_naive

    a = adapters[family]
    job = _job(a, samples, SETTINGS)
    conds = [
        c
        for c in get_experiment("token_ablation").conditions(job)
        if c.name in ("baseline", "object+1", "random_k24_s0")
    ]
    key = ["condition", "task", "sample_id"]
    fast = run_conditions("t", conds, job).sort_values(key).reset_index(drop=True)
    naive = run_conditions_naive("t", conds, job).sort_values(key).reset_index(drop=True)
    assert len(fast) == len(naive) == 3 * 2 * len(samples)
    assert list(fast["answer"]) == list(naive["answer"])
    assert list(fast["n_edited"]) == list(naive["n_edited"])


@pytest.mark.parametrize("family", ["llava", "internvl", "qwen2_5_vl"])
def test_naive_reference_scores_the_gold_answer(adapters, samples, family):
    """``score_gold`` conditions (head ablation): the naive reference's gold nll (one whole forward)
    equals the shared-prefix scoring's, with and without heads zeroed after the image."""
    from vlmloc.experiments.base import Condition, run_conditions
    from vlmloc.experiments.reference import run_conditions_naive
    from vlmloc.interventions import HeadZero

    a = adapters[family]
    job = _job(a, samples, {})
    conds = [
        Condition("baseline", {}, tasks=("localization",), score_gold=True),
        Condition(
            "zeroed",
            {},
            HeadZero([(0, 0), (1, 1)], "post_image"),
            tasks=("localization",),
            score_gold=True,
        ),
    ]
    key = ["condition", "task", "sample_id"]
    fast = run_conditions("t", conds, job).sort_values(key).reset_index(drop=True)
    naive = run_conditions_naive("t", conds, job).sort_values(key).reset_index(drop=True)
    assert list(fast["answer"]) == list(naive["answer"])
    np.testing.assert_allclose(naive["gold_nll"], fast["gold_nll"], atol=1e-5)
    base, zeroed = (
        naive.loc[naive["condition"] == c, "gold_nll"].to_numpy() for c in ("baseline", "zeroed")
    )
    assert np.abs(base - zeroed).max() > 1e-4  # the ablation changes the score: the test can fail


def _rows(model_scores: dict, seeds=(0, 1)):
    """Scored rows from {(strategy, param, seed): [per-sample scores]} (loc and cls the same)."""
    out = []
    for (strategy, param, seed), scores in model_scores.items():
        for i, v in enumerate(scores):
            for task, col in (("localization", "loc_score"), ("list", "identified")):
                out.append(
                    {
                        "sample_id": f"s{i}",
                        "strategy": strategy,
                        "padding": param if strategy == "object" else np.nan,
                        "k": param if strategy in ("ig", "random") else np.nan,
                        "seed": seed,
                        "task": task,
                        "loc_score": v if col == "loc_score" else np.nan,
                        "identified": v if col == "identified" else np.nan,
                        "n_tokens": 100,
                        "n_edited": 0 if strategy == "baseline" else 10 * (i + 1),
                        "n_tokens_global": 100,
                        "n_edited_global": 0 if strategy == "baseline" else 10 * (i + 1),
                        "n_tokens_local": 0,
                        "n_edited_local": 0,
                    }
                )
    return pd.DataFrame(out)


def test_table1_values_drops_intervals_and_seed_std():
    from vlmloc.tables.token_ablation import format_table1, table1, table4

    rows = _rows(
        {
            ("baseline", np.nan, np.nan): [1, 1, 0, 1],
            ("object", 0, np.nan): [0, 0, 0, 1],
            ("random", 8, 0): [1, 1, 0, 1],
            ("random", 8, 1): [1, 0, 0, 1],
        }
    )
    t = table1({"toy": rows}, {"toy": "llava-1.5-7b"}, {"resamples": 500, "seed": 0})
    base, obj, rnd = (t[t["strategy"] == s].iloc[0] for s in ("baseline", "object", "random"))
    assert (
        base["loc"] == 75 and obj["loc"] == 25 and obj["loc_drop"] == -50 and obj["cls_drop"] == -50
    )
    assert rnd["loc"] == pytest.approx(62.5) and rnd["loc_std"] == pytest.approx(
        12.5
    )  # seeds: 75 and 50
    assert obj["loc_lo"] <= obj["loc"] <= obj["loc_hi"] and obj["loc_hi"] - obj["loc_lo"] > 10
    assert obj["token_pct"] == pytest.approx(25) and np.isnan(
        obj["token_pct_local"]
    )  # (10+20+30+40)/4 %
    assert obj["paper_loc"] == 5.92 and base["paper_cls"] == 58.10 and obj["paper_token"] == "8"
    t4 = table4(t, {"toy": "llava-1.5-7b"})
    assert list(t4["strategy"]) == ["baseline", "random"] and t4["paper_loc_std"].iloc[1] == 0.08
    md = format_table1(t, ["toy"])
    assert "| object +0 | 25 | 25.0 ↓50.0 | 25.0 ↓50.0 |" in md and "62.5 ± 12.5 ↓12.5" in md
    empty = table1({"toy": rows.iloc[:0]}, {}, None)
    assert empty.empty and "loc" in empty.columns


def test_ig_gap_is_unknown_when_f_does_not_move():
    from vlmloc.attribution import Attribution

    assert np.isnan(Attribution(np.zeros(3), 0.2, 1.5, 1.5).relative_gap)
    assert Attribution(np.zeros(3), 0.2, 2.0, 1.0).relative_gap == pytest.approx(0.2)


def test_table1_ig_gap_says_how_many_samples_it_leaves_out():
    from vlmloc.tables.token_ablation import table1

    rows = _rows({("baseline", np.nan, np.nan): [1, 1, 0, 1], ("ig", 8, np.nan): [0, 1, 0, 1]})
    rows["ig_gap"] = np.where(
        rows["strategy"] == "ig",
        rows["sample_id"].map({"s0": 0.01, "s1": np.nan, "s2": 0.03, "s3": 0.02}),
        np.nan,
    )
    ig = table1({"toy": rows}, {}, {"resamples": 50, "seed": 0}).set_index("strategy").loc["ig"]
    assert ig["loc_ig_gap_median"] == pytest.approx(0.02) and ig["loc_ig_gap_n_excluded"] == 1
    rows.loc[rows["strategy"] == "ig", "ig_gap"] = np.nan  # f never moved: every sample left out
    ig = table1({"toy": rows}, {}, {"resamples": 50, "seed": 0}).set_index("strategy").loc["ig"]
    assert np.isnan(ig["cls_ig_gap_median"]) and ig["cls_ig_gap_n_excluded"] == 4
