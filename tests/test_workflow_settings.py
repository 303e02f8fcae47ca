"""What a model job of an experiment is given (vlmloc.workflow.settings): the experiment's
entry, the model's own settings merged over it key by key, nothing that only tables read."""

import copy

import pytest
import yaml
from conftest import ROOT
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from vlmloc.workflow.settings import experiment_settings

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def test_a_models_ig_steps_replace_only_the_steps():
    e = CONFIG["experiments"]
    internvl = experiment_settings(e, "token_ablation", "toy_internvl")
    llava = experiment_settings(e, "token_ablation", "toy_llava")
    assert internvl["integrated_gradients"]["steps"] == {"localization": 16, "list": 12}
    assert llava["integrated_gradients"]["steps"] == {"localization": 32, "list": 12}
    # everything else of integrated_gradients is the experiment's, for both models
    for key in ("k", "method", "target", "importance"):
        assert internvl["integrated_gradients"][key] == llava["integrated_gradients"][key]
    assert internvl["integrated_gradients"]["k"] == e["token_ablation"]["integrated_gradients"]["k"]
    # the config entry itself is untouched (the next model gets the experiment's steps)
    assert e["token_ablation"]["integrated_gradients"]["steps"]["localization"] == 32
    for key in ("datasets", "shards", "models"):
        assert key not in internvl


def test_flat_per_model_settings_replace_the_value():
    e = copy.deepcopy(CONFIG["experiments"])
    s = experiment_settings(e, "attention_knockout", "toy_llava")
    assert s["fig3_window"] == 2 and s["fig12_windows"] == [2, 1]
    assert experiment_settings(e, "attention_knockout", "llava15_7b")["fig3_window"] == 4


def test_presentation_keys_are_not_passed_to_model_jobs():
    e = CONFIG["experiments"]
    assert "min_log_gap" not in experiment_settings(e, "mediation", "toy_llava")
    assert "metric" not in experiment_settings(e, "containerization", "toy_llava")
    ha = experiment_settings(e, "head_ablation", "toy_llava")
    assert ha["pairs"] == {"n_pairs": 50, "seed": 0}  # disjoint pool: the pairs are left out
    assert ha["ablation"] == ["zero", "mean"] and ha["mean_samples"] == 32  # the demo runs both
    zero = copy.deepcopy(e)
    zero["head_ablation"]["ablation"] = "zero"
    assert "mean_samples" not in experiment_settings(zero, "head_ablation", "toy_llava")
    zero["head_ablation"]["ablation"] = ["zero"]  # a list of one reads no mean either
    assert "mean_samples" not in experiment_settings(zero, "head_ablation", "toy_llava")


def test_a_misspelt_per_model_ig_key_is_named():
    cfg = copy.deepcopy(CONFIG)
    cfg["experiments"]["token_ablation"]["models"]["toy_internvl"]["integrated_gradients"] = {
        "stepz": 8
    }
    with pytest.raises(WorkflowError, match="stepz"):
        validate(cfg, SCHEMA)


@pytest.mark.parametrize(
    ("key", "value"),
    [("rank_by", "mode"), ("ablation", ["zero", "half"]), ("positions", ["answer"])],
)
def test_a_bad_head_ablation_statistic_or_variant_is_named(key, value):
    cfg = copy.deepcopy(CONFIG)
    cfg["experiments"]["head_ablation"][key] = value
    with pytest.raises(WorkflowError, match=key):
        validate(cfg, SCHEMA)


def test_head_ablation_variants_and_ranking_statistic_validate():
    cfg = copy.deepcopy(CONFIG)
    ha = cfg["experiments"]["head_ablation"]
    ha.update(rank_by="log", ablation="mean", positions=["post_image", "all"])
    validate(cfg, SCHEMA)
    cfg["bootstrap"]["permutations"] = 5
    with pytest.raises(WorkflowError, match="permutations"):
        validate(cfg, SCHEMA)
