# What the default target builds: per dataset its data stages, screening and experiments' tables
# and figures, the probes', and the rules that run on the host that runs Snakemake.


def data_targets(dataset):
    return [
        f"results/{dataset}/samples.parquet",
        f"results/{dataset}/tables/filter_counts.tsv",
        f"results/{dataset}/removed.parquet",
        f"results/{dataset}/figures/object_removal_examples.png",
        f"results/{dataset}/figures/object_removal_examples.pdf",
    ]


# ---- models -------------------------------------------------------------------------------------


def screening_targets(dataset):
    return [
        f"results/{dataset}/probing_subset.parquet",
        f"results/{dataset}/tables/screening_counts.tsv",
        f"results/{dataset}/tables/baseline_accuracy.tsv",
        f"results/{dataset}/tables/false_positive_rates.tsv",
        f"results/{dataset}/figures/baseline_accuracy.png",
        f"results/{dataset}/figures/baseline_accuracy.pdf",
        f"results/{dataset}/figures/localization_examples.png",
        f"results/{dataset}/figures/localization_examples.pdf",
    ]


# ---- experiments --------------------------------------------------------------------------------


def experiment_targets(dataset):
    targets = []
    if dataset in experiment_datasets("token_ablation"):
        targets += [
            f"results/{dataset}/tables/table1_token_ablation.tsv",
            f"results/{dataset}/tables/table4_random_ablation.tsv",
            f"results/{dataset}/figures/token_ablation.png",
            f"results/{dataset}/figures/token_ablation.pdf",
        ]
    if dataset in experiment_datasets("token_ablation_matched"):
        targets += [f"results/{dataset}/tables/table5_token_ablation_matched.tsv"]
    if dataset in experiment_datasets("containerization"):
        targets += [
            f"results/{dataset}/figures/containerization_{f}.{ext}"
            for f in ("fig1", "fig9")
            for ext in ("png", "pdf")
        ]
    if dataset in experiment_datasets("token_shuffle"):
        targets += [f"results/{dataset}/tables/table2_token_shuffle.tsv"]
    if dataset in experiment_datasets("view_ablation"):
        targets += [
            f"results/{dataset}/tables/table3_view_ablation.tsv",
            f"results/{dataset}/figures/view_ablation_fig10.png",
            f"results/{dataset}/figures/view_ablation_fig10.pdf",
        ]
    if dataset in experiment_datasets("mediation"):
        targets += [
            f"results/{dataset}/tables/mediation_{t}.tsv"
            for t in ("heads", "sparsity", "overlap")
        ] + [
            f"results/{dataset}/figures/mediation_{f}.{ext}"
            for f in ("fig4", "sparsity")
            for ext in ("png", "pdf")
        ]
    if dataset in experiment_datasets("head_ablation"):
        targets += [
            f"results/{dataset}/tables/head_ablation_{t}.tsv" for t in ("curves", "auc")
        ] + [
            f"results/{dataset}/figures/head_ablation_fig5.{ext}"
            for ext in ("png", "pdf")
        ]
    if dataset in experiment_datasets("attention_knockout"):
        targets += [
            f"results/{dataset}/tables/knockout_summary.tsv",
            f"results/{dataset}/figures/knockout_fig3.png",
            f"results/{dataset}/figures/knockout_fig3.pdf",
            f"results/{dataset}/figures/knockout_fig12.png",
            f"results/{dataset}/figures/knockout_fig12.pdf",
        ]
    return targets


# ---- positional probes (paper sec. 3.2) -------------------------------------------------------------


def probe_targets():
    if not probe_models():
        return []
    tables = ["probe_layers", "probe_best_layer", "probe_methods", "probe_line_breaks"]
    figures = ["probes_fig2", "probes_fig11", "probe_methods"]
    return [f"results/probes/tables/{t}.tsv" for t in tables] + [
        f"results/probes/figures/{f}.{ext}" for f in figures for ext in ("png", "pdf")
    ]


# ---- known mechanisms (config/mechanisms.yaml) ------------------------------------------------------


def mechanism_targets():
    if not config.get("mechanisms"):
        return []
    return [
        "results/mechanisms/tables/mechanism_verdicts.tsv",
        "results/mechanisms/tables/mechanism_verdicts.md",
        "results/mechanisms/figures/mechanisms.png",
        "results/mechanisms/figures/mechanisms.pdf",
    ]


def all_targets():
    targets = []
    for name in config["run"]["datasets"]:
        targets += data_targets(name)
        if config["run"]["models"]:
            targets += screening_targets(name)
            targets += experiment_targets(name)
    return targets + probe_targets() + mechanism_targets()


# Downloads (compute nodes often have no internet) and the rules that only draw tables and
# figures from small files run where Snakemake runs; under profiles/slurm everything else is a job.


def local_rules():
    return [
        r.name
        for r in workflow.rules
        if r.name in LOCAL_RULES or r.name.startswith(LOCAL_RULE_PREFIXES)
    ]


# say once, when the workflow is read, which models skip which experiment and why


LOCAL_RULES = ("all", "download", "prepare_model")
LOCAL_RULE_PREFIXES = ("table_", "figure_")
