# The paper's head-level account (sec. 3.3.2-3.3.3, appendix 10): per-head causal mediation runs
# as the `mediation` experiment (run_experiment / score_experiment); here its rows become each
# model's head ranking, the MF tables and figures, and head ablation's tables and figure. Head
# ablation's model jobs read the ranking (run_experiment's `upstream_mediation` input).


rule rank_heads:
    """Gathers the mediation shards (no pair missing or twice) and gives per head and task: mean
    mediation fraction over the kept pairs with its bootstrap interval, the median, MF from
    pair-averaged perplexities, the bounded log-gap share, and the rank (by the mean); and every
    pair's MF per head (the sparsity test resamples them). It reads the raw shards, not scored
    rows: teacher-forced scores need no parser, so a parser fix reruns neither this nor the head
    ablation that reads it.
    """
    input:
        shards=lambda w: expand(
            "results/{{dataset}}/experiments/mediation/{{model}}/raw/shard-{shard}.parquet",
            shard=range(EXPERIMENTS["mediation"]["shards"]),
        ),
        subset="results/{dataset}/probing_subset_ids.txt",
    output:
        heads="results/{dataset}/experiments/mediation/{model}/heads.parquet",
        pairs="results/{dataset}/experiments/mediation/{model}/pair_mf.parquet",
    log:
        "logs/rank_heads/{dataset}/{model}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        min_log_gap=config["experiments"].get("mediation", {}).get("min_log_gap"),
        bootstrap=config["bootstrap"],
    script:
        "../scripts/rank_heads.py"


rule table_mediation:
    """Every head's MF statistics, the sparsity of MF against a head-permutation null, the overlap
    of the two tasks' top heads against chance beside the paper's counts, and how the statistics'
    rankings differ."""
    input:
        heads=lambda w: expand(
            "results/{{dataset}}/experiments/mediation/{model}/heads.parquet",
            model=experiment_models("mediation"),
        ),
        pairs=lambda w: expand(
            "results/{{dataset}}/experiments/mediation/{model}/pair_mf.parquet",
            model=experiment_models("mediation"),
        ),
    output:
        heads=report(
            "results/{dataset}/tables/mediation_heads.tsv",
            caption="../report/mediation_heads.rst",
            category="Causal mediation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "MF per head"},
        ),
        sparsity=report(
            "results/{dataset}/tables/mediation_sparsity.tsv",
            caption="../report/mediation_sparsity_table.rst",
            category="Causal mediation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "MF sparsity"},
        ),
        overlap=report(
            "results/{dataset}/tables/mediation_overlap.tsv",
            caption="../report/mediation_overlap.rst",
            category="Causal mediation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "top-head overlap"},
        ),
        statistics=report(
            "results/{dataset}/tables/mediation_statistics.tsv",
            caption="../report/mediation_statistics.rst",
            category="Causal mediation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "MF statistics' rankings"},
        ),
    log:
        "logs/tables/mediation/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        models=experiment_models("mediation"),
        paper_names=paper_names(experiment_models("mediation")),
        bootstrap=config["bootstrap"],
        rank_by=config["experiments"].get("head_ablation", {}).get("rank_by", "mean"),
    script:
        "../scripts/table_mediation.py"


rule figure_mediation:
    """Fig 4 / Fig 14 (MF per layer and head, per task and model) and the sorted |MF| against its
    head-permutation null."""
    input:
        heads=lambda w: expand(
            "results/{{dataset}}/experiments/mediation/{model}/heads.parquet",
            model=experiment_models("mediation"),
        ),
        pairs=lambda w: expand(
            "results/{{dataset}}/experiments/mediation/{model}/pair_mf.parquet",
            model=experiment_models("mediation"),
        ),
        sparsity="results/{dataset}/tables/mediation_sparsity.tsv",
    output:
        fig4=report(
            "results/{dataset}/figures/mediation_fig4.png",
            caption="../report/mediation_fig4.rst",
            category="Causal mediation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "Fig 4 / Fig 14"},
        ),
        fig4_pdf="results/{dataset}/figures/mediation_fig4.pdf",
        sparsity=report(
            "results/{dataset}/figures/mediation_sparsity.png",
            caption="../report/mediation_sparsity.rst",
            category="Causal mediation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "sorted |MF|"},
        ),
        sparsity_pdf="results/{dataset}/figures/mediation_sparsity.pdf",
    log:
        "logs/figures/mediation/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=experiment_models("mediation"),
        paper_names=paper_names(experiment_models("mediation")),
        bootstrap=config["bootstrap"],
    script:
        "../scripts/figure_mediation.py"


rule table_head_ablation:
    """Localization accuracy and the share of answers out of format per ablation, positions,
    setting and share of heads ablated; each curve's normalized AUC with its interval; and the
    critical rankings' AUC differences from the controls with paired bootstrap intervals.
    """
    input:
        experiment_rows("head_ablation"),
    output:
        curves=report(
            "results/{dataset}/tables/head_ablation_curves.tsv",
            caption="../report/head_ablation_curves.rst",
            category="Head ablation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "curves"},
        ),
        auc=report(
            "results/{dataset}/tables/head_ablation_auc.tsv",
            caption="../report/head_ablation_auc.rst",
            category="Head ablation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "normalized AUC"},
        ),
        contrasts=report(
            "results/{dataset}/tables/head_ablation_contrasts.tsv",
            caption="../report/head_ablation_contrasts.rst",
            category="Head ablation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "AUC differences"},
        ),
    log:
        "logs/tables/head_ablation/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=experiment_models("head_ablation"),
        paper_names=paper_names(experiment_models("head_ablation")),
        bootstrap=config["bootstrap"],
    script:
        "../scripts/table_head_ablation.py"


rule figure_head_ablation:
    """Fig 5 / Fig 15: localization accuracy under cumulative head ablation, per ablation and
    positions, with the answers out of format below; AUCs and their differences in the legend.
    """
    input:
        curves="results/{dataset}/tables/head_ablation_curves.tsv",
        auc="results/{dataset}/tables/head_ablation_auc.tsv",
        contrasts="results/{dataset}/tables/head_ablation_contrasts.tsv",
    output:
        png=report(
            "results/{dataset}/figures/head_ablation_fig5.png",
            caption="../report/head_ablation_fig5.rst",
            category="Head ablation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "Fig 5 / Fig 15"},
        ),
        pdf="results/{dataset}/figures/head_ablation_fig5.pdf",
    log:
        "logs/figures/head_ablation/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/figure_head_ablation.py"
