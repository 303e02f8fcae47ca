"""The workload count behind the Slurm wall times and the paper's GPU-hours: its model dimensions
are the real architectures', its pass count is the speed yardstick's, its condition counts are
the experiments' own."""

import pytest
import torch
import yaml
from conftest import ROOT
from paper_flops import DecoderDims, forward_flops, meta_model, paper_config

from vlmloc import plans, workload
from vlmloc.defaults import with_defaults
from vlmloc.models import load_adapter

PAPER = {
    "llava15_7b": "llava-1.5-7b",
    "llava15_13b": "llava-1.5-13b",
    "internvl35_8b": "internvl-3.5-8b",
}


def _linear(module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_geometry_is_the_real_architecture(name):
    model, cfg = meta_model(name), paper_config(name)
    g = workload.Geometry.of_paper(PAPER[name])
    dims = DecoderDims.of(model.model.language_model, cfg.text_config)
    assert (g.linear, g.layers, g.attention_width, g.hidden, g.vocab) == (
        dims.linear_params,
        dims.layers,
        dims.attention_width,
        dims.hidden,
        dims.vocab,
    )
    assert g.heads == cfg.text_config.num_attention_heads
    assert g.vision_linear == _linear(model.model.vision_tower) + _linear(
        model.model.multi_modal_projector
    )
    v = cfg.vision_config
    size, patch = [x[0] if isinstance(x, list | tuple) else x for x in (v.image_size, v.patch_size)]
    assert g.vision_seq == (size // patch) ** 2 + 1 and g.vision_layers == v.num_hidden_layers
    merge = 4 if name.startswith("internvl") else 1  # InternVL's pixel shuffle merges 2 x 2 patches
    assert g.tokens_per_view == (size // patch) ** 2 // merge


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_a_checkpoints_geometry_is_counted_from_its_config(family):
    folder = ROOT / f"checkpoints/toy_{family}"
    g = workload.Geometry.of_checkpoint(folder)
    a = load_adapter(family, str(folder))
    dims = DecoderDims.of(a.language_model, a.model.config.text_config)
    assert g.linear == dims.linear_params and g.layers == dims.layers and g.heads == a.num_heads
    assert g.vision_linear == _linear(a.vision_tower) + _linear(a.projector)
    assert g.tokens_per_view == a.grid**2


def test_the_decoder_count_is_the_speed_yardsticks():
    g = workload.Geometry.of_paper("internvl-3.5-8b")
    dims = DecoderDims(g.linear, g.layers, g.attention_width, g.hidden, g.vocab)
    for tokens, past, logits in ((1, 1800, 1), (40, 1800, 27), (1850, 0, 1)):
        assert g.decoder(tokens, past, logits) == pytest.approx(
            forward_flops(dims, tokens, past, logits)
        )


def test_knockout_conditions_are_the_experiments(adapters, tmp_path):
    """The count of the toys' knockout conditions (its plan, vlmloc.plans) is the experiment's own
    list (same windows)."""
    from test_experiment_layer import CATS, _samples

    from vlmloc.experiments import ShardJob, get_experiment
    from vlmloc.runner import Runner

    settings = yaml.safe_load((ROOT / "config.yaml").read_text())["experiments"][
        "attention_knockout"
    ]
    settings = with_defaults(
        "experiments.attention_knockout", {**settings, **settings["models"]["tiny_llava"]}
    )
    a = adapters["llava"]
    samples = _samples(tmp_path)
    job = ShardJob(
        a,
        Runner(a, progress=False),
        samples,
        CATS,
        settings,
        {},
        present=[[c] for c in samples["category"]],
        progress=False,
    )
    conditions = list(get_experiment("attention_knockout").conditions(job))
    assert plans.knockout_conditions(a.num_layers, settings) == len(conditions)
    every = {**settings, "control_windows": "all"}
    assert (
        plans.knockout_conditions(a.num_layers, every)
        == len(
            list(
                get_experiment("attention_knockout").conditions(
                    ShardJob(a, None, samples, CATS, every, {}, progress=False)
                )
            )
        )
        > len(conditions)
    )
    # the paper's 32 layers: windows of 4, 6 and 1 (8 + 6 + 32) and all layers, x 2 object masks, the
    # 6 control draws in the 8 + 1 windows of Fig 3 and all layers, + baseline; or in all 47 windows
    paper = {**settings, "fig3_window": 4, "fig12_windows": [6, 1]}
    assert plans.knockout_conditions(32, paper) == 47 * 2 + 9 * 6 + 1
    assert plans.knockout_conditions(32, {**paper, "control_windows": "all"}) == 47 * 8 + 1


def test_more_work_costs_more():
    g = workload.Geometry.of_paper("llava-1.5-7b")
    med = {"n_pairs": 50, "tasks": ["localization", "binary"]}
    assert workload.experiment_flops(g, "mediation", {**med, "n_pairs": 100}, 0) == pytest.approx(
        2 * workload.experiment_flops(g, "mediation", med, 0)
    )
    ig = {
        "paddings": [0],
        "random": {"k": [1], "seeds": [0]},
        "integrated_gradients": {"k": [1], "steps": 50},
    }
    more = {**ig, "integrated_gradients": {"k": [1], "steps": 100}}
    assert workload.experiment_flops(
        g, "token_ablation", more, 10
    ) > 1.5 * workload.experiment_flops(g, "token_ablation", ig, 10)
    with pytest.raises(ValueError, match="no FLOP count"):
        workload.experiment_flops(g, "nonsense", {}, 1)


def test_the_paper_table_covers_every_model_and_experiment():
    cfg = workload.overlay(
        *(yaml.safe_load((ROOT / f).read_text()) for f in ("config.yaml", "config/paper.yaml"))
    )
    table = workload.paper_flops(cfg)
    assert set(table) == set(PAPER)
    assert "view_ablation" in table["internvl35_8b"] and "view_ablation" not in table["llava15_7b"]
    for row in table.values():
        assert all(f > 0 for f in row.values())
    assert sum(table["llava15_13b"].values()) > sum(table["llava15_7b"].values())
