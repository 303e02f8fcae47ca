"""What the default target builds (workflow/rules/targets.smk calls these): per dataset its data
stages, screening and the experiments' tables and figures, the probes', the known-mechanism
comparison's. Pure functions of the config and of which datasets each experiment runs on (the
workflow knows which models it skips). Torch-free."""

from __future__ import annotations

from collections.abc import Callable


def both(stem: str) -> list[str]:
    """A figure's PNG and PDF."""
    return [f"{stem}.png", f"{stem}.pdf"]


def data_targets(dataset: str) -> list[str]:
    return [
        f"results/{dataset}/samples.parquet",
        f"results/{dataset}/tables/filter_counts.tsv",
        f"results/{dataset}/removed.parquet",
        *both(f"results/{dataset}/figures/object_removal_examples"),
    ]


def screening_targets(dataset: str) -> list[str]:
    return [
        f"results/{dataset}/probing_subset.parquet",
        f"results/{dataset}/tables/screening_counts.tsv",
        f"results/{dataset}/tables/baseline_accuracy.tsv",
        f"results/{dataset}/tables/false_positive_rates.tsv",
        *both(f"results/{dataset}/figures/baseline_accuracy"),
        *both(f"results/{dataset}/figures/localization_examples"),
    ]


# per experiment, the tables and figures of one dataset ("{d}": the dataset)
EXPERIMENT_OUTPUTS = {
    "token_ablation": [
        "tables/table1_token_ablation.tsv",
        "tables/table4_random_ablation.tsv",
        *both("figures/token_ablation"),
    ],
    "token_ablation_matched": ["tables/table5_token_ablation_matched.tsv"],
    "containerization": [
        *both("figures/containerization_fig1"),
        *both("figures/containerization_fig9"),
    ],
    "token_shuffle": ["tables/table2_token_shuffle.tsv"],
    "view_ablation": ["tables/table3_view_ablation.tsv", *both("figures/view_ablation_fig10")],
    "mediation": [
        "tables/mediation_heads.tsv",
        "tables/mediation_sparsity.tsv",
        "tables/mediation_overlap.tsv",
        "tables/mediation_statistics.tsv",
        *both("figures/mediation_fig4"),
        *both("figures/mediation_sparsity"),
    ],
    "head_ablation": [
        "tables/head_ablation_curves.tsv",
        "tables/head_ablation_auc.tsv",
        "tables/head_ablation_contrasts.tsv",
        *both("figures/head_ablation_fig5"),
    ],
    "attention_knockout": [
        "tables/knockout_summary.tsv",
        *both("figures/knockout_fig3"),
        *both("figures/knockout_fig12"),
    ],
}


# per experiment, the figures of one dataset drawn per model ("{model}")
IG_TASKS = ("localization", "list")  # the tasks integrated gradients ranks tokens for
MODEL_OUTPUTS = {
    "token_ablation": [
        *both("figures/token_grid_fig7_{model}"),
        *[f for task in IG_TASKS for f in both(f"figures/token_grid_ig_{{model}}_{task}")],
    ],
}


def experiment_targets(
    dataset: str, experiment_datasets: Callable[[str], list[str]], models: list[str] = ()
) -> list[str]:
    """The tables and figures of every experiment that runs on ``dataset`` (those drawn per
    model for each of ``models``)."""
    return [
        f"results/{dataset}/{out}"
        for name, outs in EXPERIMENT_OUTPUTS.items()
        if dataset in experiment_datasets(name)
        for out in outs
    ] + [
        f"results/{dataset}/{out.format(model=model)}"
        for name, outs in MODEL_OUTPUTS.items()
        if dataset in experiment_datasets(name)
        for model in models
        for out in outs
    ]


PROBE_TABLES = ("probe_layers", "probe_best_layer", "probe_methods", "probe_line_breaks")
PROBE_FIGURES = ("probes_fig2", "probes_fig11", "probe_methods")


def probe_targets(probe_models: list[str]) -> list[str]:
    if not probe_models:
        return []
    return [f"results/probes/tables/{t}.tsv" for t in PROBE_TABLES] + [
        f for name in PROBE_FIGURES for f in both(f"results/probes/figures/{name}")
    ]


def mechanism_targets(config: dict) -> list[str]:
    if not config.get("mechanisms"):
        return []
    return [
        "results/mechanisms/tables/mechanism_verdicts.tsv",
        "results/mechanisms/tables/mechanism_verdicts.md",
        *both("results/mechanisms/figures/mechanisms"),
    ]


def all_targets(
    config: dict, experiment_datasets: Callable[[str], list[str]], probe_models: list[str]
) -> list[str]:
    targets = []
    for name in config["run"]["datasets"]:
        targets += data_targets(name)
        if config["run"]["models"]:
            targets += screening_targets(name)
            targets += experiment_targets(name, experiment_datasets, config["run"]["models"])
    return targets + probe_targets(probe_models) + mechanism_targets(config)
