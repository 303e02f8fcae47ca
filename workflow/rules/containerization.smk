# Paper sec. 3.1.1-3.1.2: containerization (Fig 1, 8, 9), token shuffling (Table 2) and the
# single-view ablation (Table 3, Fig 10). The model jobs are `run_experiment`; these rules read
# the scored rows.


rule table_containerization:
    """Fig 1's cells: the grown object's answers against ground-truth boxes grown by s."""
    input:
        experiment_rows("containerization"),
    output:
        report(
            "results/{dataset}/tables/containerization_cells.tsv",
            caption="../report/containerization_cells.rst",
            category="Containerization",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "Fig 1 cells"},
        ),
    log:
        "logs/tables/containerization/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=experiment_models("containerization"),
        metric=with_defaults(
            "experiments.containerization", EXPERIMENTS.get("containerization")
        )["metric"],
        bootstrap=config["bootstrap"],
    script:
        "../scripts/table_containerization.py"


rule figure_containerization:
    """Fig 1 / Fig 8 (heatmaps per model) and Fig 9 (examples)."""
    input:
        cells="results/{dataset}/tables/containerization_cells.tsv",
        rows=experiment_rows("containerization"),
        samples="results/{dataset}/samples.parquet",
    output:
        fig1=report(
            "results/{dataset}/figures/containerization_fig1.png",
            caption="../report/containerization_fig1.rst",
            category="Containerization",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "Fig 1 / Fig 8"},
        ),
        fig1_pdf="results/{dataset}/figures/containerization_fig1.pdf",
        fig9=report(
            "results/{dataset}/figures/containerization_fig9.png",
            caption="../report/containerization_fig9.rst",
            category="Containerization",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "Fig 9"},
        ),
        fig9_pdf="results/{dataset}/figures/containerization_fig9.pdf",
    log:
        "logs/figures/containerization/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=experiment_models("containerization"),
        metric=with_defaults(
            "experiments.containerization", EXPERIMENTS.get("containerization")
        )["metric"],
        examples=with_defaults(
            "experiments.containerization", EXPERIMENTS.get("containerization")
        )["examples"],
    script:
        "../scripts/figure_containerization.py"


rule table_token_shuffle:
    """Table 2: all visual tokens or the object's tokens permuted (mean +- std over seeds)."""
    input:
        experiment_rows("token_shuffle"),
    output:
        tsv=report(
            "results/{dataset}/tables/table2_token_shuffle.tsv",
            caption="../report/table2_token_shuffle.rst",
            category="Containerization",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "Table 2"},
        ),
        md="results/{dataset}/tables/table2_token_shuffle.md",
    log:
        "logs/tables/token_shuffle/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=experiment_models("token_shuffle"),
        paper_names=paper_names(experiment_models("token_shuffle")),
        bootstrap=config["bootstrap"],
    script:
        "../scripts/table_token_shuffle.py"


rule table_view_ablation:
    """Table 3 and Fig 10's drops per size bucket (models with local views only)."""
    input:
        experiment_rows("view_ablation"),
    output:
        tsv=report(
            "results/{dataset}/tables/table3_view_ablation.tsv",
            caption="../report/table3_view_ablation.rst",
            category="Global and local views",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "Table 3"},
        ),
        md="results/{dataset}/tables/table3_view_ablation.md",
        sizes="results/{dataset}/tables/view_ablation_sizes.tsv",
    log:
        "logs/tables/view_ablation/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=experiment_models("view_ablation"),
        skipped=skipped_models("view_ablation"),
        paper_names=paper_names(experiment_models("view_ablation")),
        bootstrap=config["bootstrap"],
        figure_padding=with_defaults(
            "experiments.view_ablation", EXPERIMENTS.get("view_ablation")
        )["figure_padding"],
    script:
        "../scripts/table_view_ablation.py"


rule figure_view_ablation:
    """Fig 10: the drop per COCO size bucket, task and ablated view."""
    input:
        "results/{dataset}/tables/view_ablation_sizes.tsv",
    output:
        png=report(
            "results/{dataset}/figures/view_ablation_fig10.png",
            caption="../report/view_ablation_fig10.rst",
            category="Global and local views",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "Fig 10"},
        ),
        pdf="results/{dataset}/figures/view_ablation_fig10.pdf",
    log:
        "logs/figures/view_ablation/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/figure_view_ablation.py"
