"""Scientific regression tests on the committed toy models (checkpoints/): the paper's
qualitative findings must hold on models that really answer."""


import numpy as np
import pytest
from conftest import ROOT

from vlmloc.data.shapes import ShapesSpec
from vlmloc.experiments.screening import score_answer
from vlmloc.experiments.token_ablation import object_indices, random_indices_like, run_ablated
from vlmloc.interventions import mean_visual_embedding
from vlmloc.models import load_adapter
from vlmloc.runner import Runner
from vlmloc.tasks import task_prompt
from vlmloc.toy.evaluate import MAX_NEW_TOKENS, evaluate, held_out_set, summarize

SPEC = ShapesSpec()
CHECKPOINTS = [ROOT / "checkpoints" / f"toy_{f}" / "model.safetensors" for f in ("llava", "internvl")]
pytestmark = pytest.mark.skipif(
    not all(p.exists() for p in CHECKPOINTS), reason="trained toy checkpoints are not committed yet"
)
TASKS = {"localization": MAX_NEW_TOKENS["localization"]}


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("held_out")
    samples, removed = held_out_set(root / "eval", SPEC, 60, seed=7000)
    mean_samples, _ = held_out_set(root / "mean", SPEC, 24, seed=7001)
    return samples, removed, list(dict.fromkeys(mean_samples["image_path"]))


@pytest.fixture(scope="module", params=["llava", "internvl"])
def toy(request, held_out):
    family = request.param
    path = ROOT / "checkpoints" / f"toy_{family}"
    assert (path / "model.safetensors").exists(), f"missing committed checkpoint {path}"
    adapter = load_adapter(family, path, dtype="float32", device="cpu")
    samples, removed, _ = held_out
    answers = evaluate(adapter, samples, removed, SPEC.categories)
    return family, adapter, answers


def test_toy_models_really_answer(toy):
    _, _, answers = toy
    s = summarize(answers)
    assert s["n_samples"] >= 40
    # regression floors, a margin below what the committed toys give on these 51 samples
    # (IoU 0.5 72.5% / 72.5%, loc. score 49.7% / 45.1%, list 82.4% / 82.4% for LLaVA / InternVL;
    # the README has the 212-sample held-out figures)
    assert s["success@0.5"] >= 0.6 and s["loc_score"] >= 0.35
    assert s["cls_list"] >= 0.72


def test_hallucination_filter_keeps_at_least_half(toy):
    _, _, answers = toy
    assert summarize(answers)["filter_kept"] >= 0.5


def test_removed_objects_are_not_localized(toy):
    _, _, answers = toy
    s = summarize(answers)
    assert s["removed_loc_success@0.5"] < 0.10
    assert s["removed_named_list"] < 0.15


def test_answers_cut_off_at_max_new_tokens_are_marked(toy, held_out):
    """The toys end their answers with EOS when given room; a reply cut off at
    ``max_new_tokens`` is kept, marked ``truncated``, and its box is unparsed."""
    family, adapter, answers = toy
    assert answers["truncated"].mean() < 0.02, family
    samples = held_out[0].head(6)
    images = list(samples["image_path"])
    prompts = [task_prompt("localization", c, SPEC.categories) for c in samples["category"]]
    runner = Runner(adapter, batch_size=3, progress=False)
    full = runner.generate(images, prompts, MAX_NEW_TOKENS["localization"])
    [short] = runner.generate_shared(images, [prompts], [3])
    assert not any(a.truncated for a in full) and all(a.truncated for a in short), family
    for row, cut, whole in zip(samples.to_dict("records"), short, full, strict=True):
        assert whole.startswith(cut)
        scored = score_answer(adapter, "localization", cut, row, SPEC.categories)
        assert scored["truncated"] and scored["status"] == "unparsed" and scored["success@0.5"] == 0


def test_object_token_ablation_hurts_more_than_random(toy, held_out):
    family, adapter, _ = toy
    samples, _, mean_images = held_out
    runner = Runner(adapter, batch_size=32, progress=False)
    value = mean_visual_embedding(adapter, mean_images)

    def loc(indices):
        rows = run_ablated(runner, samples, SPEC.categories, indices, value, TASKS, tasks=("localization",))
        return rows["loc_score"].mean()

    base = loc(None)
    obj = object_indices(adapter, samples)
    counts = [len(i) for i in obj]
    drop_object = base - loc(obj)
    drop_random = base - np.mean([loc(random_indices_like(adapter, samples, counts, seed)) for seed in (0, 1, 2)])
    assert drop_object >= 0.5 * base > 0, (family, base, drop_object)
    assert drop_object >= 3 * max(drop_random, 0.0), (family, drop_object, drop_random)


@pytest.mark.slow
def test_demo_workflow_with_toy_models(workflow_dir):
    """The demo through the workflow with the toy models: non-trivial baselines."""
    import pandas as pd
    from conftest import run_snakemake

    (workflow_dir / "toy.yaml").write_text("run:\n  datasets: [shapes]\n  models: [toy_llava, toy_internvl]\n")
    run_snakemake(workflow_dir, "--configfile", "toy.yaml")
    acc = pd.read_csv(workflow_dir / "results/shapes/tables/baseline_accuracy.tsv", sep="\t")
    sub = acc[acc["samples"] == "probing subset"].set_index("model")
    assert set(sub.index) == {"toy_llava", "toy_internvl"}
    assert (sub["n"] >= 10).all() and (sub["loc_score"] > 50).all() and (sub["cls"] > 85).all()
    for fig in ("baseline_accuracy", "localization_examples", "object_removal_examples"):
        assert (workflow_dir / f"results/shapes/figures/{fig}.png").stat().st_size > 10_000
    # a replaced checkpoint reruns its own model's screening, not the other's
    import os
    import time

    weights = workflow_dir / "checkpoints/toy_llava/model.safetensors"
    before = weights.stat().st_mtime
    later = time.time() + 3600  # newer than the results just made, whenever the checkout was
    os.utime(weights, (later, later))
    plan = run_snakemake(workflow_dir, "--configfile", "toy.yaml", "-n", "--quiet", "rules").stdout
    assert "screen_shard" in plan, plan
    dry = run_snakemake(workflow_dir, "--configfile", "toy.yaml", "-n").stdout
    assert "screening/toy_llava/shard-" in dry and "screening/toy_internvl/shard-" not in dry, dry
    # the toy's training records are not model files: rewriting them reruns nothing
    os.utime(weights, (before, before))
    record = workflow_dir / "checkpoints/toy_internvl/eval.json"
    os.utime(record, (later, later))
    assert "Nothing to be done" in run_snakemake(workflow_dir, "--configfile", "toy.yaml", "-n").stdout


@pytest.mark.parametrize("toy", ["toy_llava", "toy_internvl"])
def test_committed_checkpoints_are_what_the_config_trains(toy):
    """`snakemake resources/trained/<toy>` with config.yaml retrains the committed checkpoint:
    every setting of its toy_training entry is the one the checkpoint was trained with."""
    import json

    import yaml

    settings = yaml.safe_load((ROOT / "config.yaml").read_text())["toy_training"][toy]
    trained = json.loads((ROOT / "checkpoints" / toy / "training_config.json").read_text())
    assert {k: trained.get(k) for k in settings} == settings
