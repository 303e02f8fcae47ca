"""The cross-key config checks (vlmloc.workflow.checks): pure functions of the config, each
message naming its key. The workflow raises them before any job (tests/test_config.py runs
Snakemake on some of them)."""

import copy

import pytest
import yaml
from conftest import ROOT
from snakemake.utils import update_config, validate

from vlmloc.workflow.checks import check_config, config_errors, mechanism_errors

SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def load(*overlays):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for name in overlays:
        update_config(cfg, yaml.safe_load((ROOT / name).read_text()))
    validate(cfg, SCHEMA)  # fills in the schema's defaults, as the workflow does
    return cfg


def test_default_config_has_no_error():
    assert config_errors(load()) == []
    check_config(load())


def test_mechanisms_overlay_is_consistent():
    cfg = load("config/mechanisms.yaml")
    assert mechanism_errors(cfg) == []
    assert cfg["mechanisms"]["probe_tolerance"] == 0.05


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c["run"].update(models=["toy_llava"]),
            "mechanisms.container: 'toy_llava_container' is not in run.models",
        ),
        (
            lambda c: c["mechanisms"].update(container="toy_llava"),
            "the same model as mechanisms.content",
        ),
        (
            lambda c: c["run"].update(datasets=["shapes_voc"]),
            "mechanisms.dataset: 'shapes' is not in run.datasets",
        ),
        (
            lambda c: c["experiments"]["token_shuffle"].update(datasets=[]),
            "experiments.token_shuffle.datasets",
        ),
        (lambda c: c["probes"].update(enabled=False), "needs probes.enabled"),
        (
            lambda c: c["probes"].update(methods=["lda"], figure_method="lda"),
            "mechanisms.probe_method: 'sgd'",
        ),
        (lambda c: c["experiments"]["containerization"].update(scales=[0, 1]), "every padding (2)"),
    ],
)
def test_mechanisms_errors_name_their_key(edit, message):
    cfg = load("config/mechanisms.yaml")
    edit(cfg)
    errors = mechanism_errors(cfg)
    assert any(message in e for e in errors), errors


def test_every_error_is_reported_at_once():
    cfg = copy.deepcopy(load())
    cfg["run"]["datasets"].append("nowhere")
    cfg["run"]["models"].append("nobody")
    cfg["filter"]["min_area_fraction"] = 0.9
    cfg["experiments"]["containerization"]["models"] = {"ghost": {}}
    cfg["probes"]["figure_method"] = "ridge"
    cfg["probes"]["methods"] = ["lda"]
    with pytest.raises(ValueError) as err:
        check_config(cfg)
    text = str(err.value)
    for key in (
        "run.datasets: 'nowhere'",
        "run.models: 'nobody'",
        "filter.min_area_fraction",
        "experiments.containerization.models: 'ghost'",
        "probes.figure_method: 'ridge'",
    ):
        assert key in text
