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
