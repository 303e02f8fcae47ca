"""The default target's lists (vlmloc.workflow.targets): pure functions of the config, checked
without Snakemake. (Every listed file is made by some rule: the dry runs of tests/test_workflow_*
build the DAG from these lists.)"""

import yaml
from conftest import ROOT

from vlmloc.workflow.targets import EXPERIMENT_OUTPUTS, all_targets, experiment_targets

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


def datasets_of(config):
    return lambda name: [
        d
        for d in config["experiments"].get(name, {}).get("datasets", [])
        if d in config["run"]["datasets"]
    ]


def test_every_experiment_of_the_config_has_outputs_and_no_other():
    assert set(EXPERIMENT_OUTPUTS) == set(CONFIG["experiments"])


def test_default_targets():
    targets = all_targets(CONFIG, datasets_of(CONFIG), ["toy_llava", "toy_internvl"])
    assert len(targets) == len(set(targets))
    assert "results/shapes/tables/mediation_heads.tsv" in targets
    assert "results/shapes_wide/tables/table3_view_ablation.tsv" in targets
    assert "results/shapes/tables/table3_view_ablation.tsv" not in targets  # not a view dataset
    assert "results/probes/tables/probe_best_layer.tsv" in targets
    assert not [t for t in targets if "mechanisms" in t]  # off in the demo
    # every figure as PNG and PDF
    pngs = {t[:-4] for t in targets if t.endswith(".png")}
    pdfs = {t[:-4] for t in targets if t.endswith(".pdf")}
    assert pngs == pdfs and len(pngs) > 15


def test_an_experiment_without_datasets_has_no_target():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["experiments"]["mediation"]["datasets"] = []
    targets = experiment_targets("shapes", datasets_of(cfg))
    assert not [t for t in targets if "mediation" in t]
    assert "results/shapes/tables/head_ablation_auc.tsv" in targets


def test_no_model_no_screening_no_probes_and_the_mechanisms_overlay():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["run"]["models"] = []
    targets = all_targets(cfg, datasets_of(cfg), [])
    assert targets and all(
        "/tables/filter_counts" in t or "samples" in t or "removed" in t or "object_removal" in t
        for t in targets
    )
    overlay = yaml.safe_load((ROOT / "config/mechanisms.yaml").read_text())
    cfg = {**CONFIG, **overlay}
    targets = all_targets(cfg, lambda name: [], ["toy_llava", "toy_llava_container"])
    assert "results/mechanisms/tables/mechanism_verdicts.tsv" in targets
    assert "results/mechanisms/figures/mechanisms.pdf" in targets


def test_token_grid_figures_per_run_model_where_token_ablation_runs():
    targets = all_targets(CONFIG, datasets_of(CONFIG), [])
    for model in CONFIG["run"]["models"]:
        for stem in (
            f"token_grid_fig7_{model}",
            f"token_grid_ig_{model}_localization",
            f"token_grid_ig_{model}_list",
        ):
            assert f"results/shapes/figures/{stem}.png" in targets
            assert f"results/shapes/figures/{stem}.pdf" in targets
            assert (
                f"results/shapes_voc/figures/{stem}.png" not in targets
            )  # no token_ablation there
    assert len([t for t in targets if "token_grid" in t]) == 6 * len(CONFIG["run"]["models"])
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["experiments"]["token_ablation"]["datasets"] = []
    assert not [t for t in all_targets(cfg, datasets_of(cfg), []) if "token_grid" in t]
