# Figures: each its own rule over cached intermediates (re-plotting never reruns a model).


rule figure_object_removal_examples:
    """Appendix Fig. 6: originals with the target's box next to their object-removed copies."""
    input:
        samples="results/{dataset}/samples.parquet",
        removed="results/{dataset}/removed.parquet",
    output:
        report(
            "results/{dataset}/figures/object_removal_examples.png",
            caption="../report/object_removal_examples.rst",
            category="Data",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "object removal examples"},
        ),
        pdf="results/{dataset}/figures/object_removal_examples.pdf",
    log:
        "logs/figures/object_removal_examples/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        n=config["examples"]["n"],
    script:
        "../scripts/figure_object_removal_examples.py"


rule figure_baseline_accuracy:
    """Baseline localization and classification per model (Table 1's baseline row, as bars)."""
    input:
        "results/{dataset}/tables/baseline_accuracy.tsv",
    output:
        report(
            "results/{dataset}/figures/baseline_accuracy.png",
            caption="../report/baseline_accuracy_figure.rst",
            category="Screening",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "baseline accuracy"},
        ),
        pdf="results/{dataset}/figures/baseline_accuracy.pdf",
    log:
        "logs/figures/baseline_accuracy/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/figure_baseline_accuracy.py"


rule figure_localization_examples:
    """Predicted boxes of every model next to the ground truth, on a few samples."""
    input:
        samples="results/{dataset}/samples.parquet",
        answers=lambda w: expand(
            "results/{{dataset}}/screening/{model}/answers.parquet",
            model=config["run"]["models"],
        ),
    output:
        report(
            "results/{dataset}/figures/localization_examples.png",
            caption="../report/localization_examples.rst",
            category="Screening",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "localization examples"},
        ),
        pdf="results/{dataset}/figures/localization_examples.pdf",
    log:
        "logs/figures/localization_examples/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        n=config["examples"]["n"],
        models=config["run"]["models"],
    script:
        "../scripts/figure_localization_examples.py"
