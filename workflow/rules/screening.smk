# Screening (paper sec. 2.2, appendix 6.2): baseline answers on original and object-removed
# images, the per-model hallucination filter, and the probing subset (intersection over models).


rule screen_shard:
    """Both tasks and the binary query on one shard of samples, original and object-removed
    (the "screening" experiment; raw answers, scored by gather_screening)."""
    input:
        samples="results/{dataset}/samples.parquet",
        removed="results/{dataset}/removed.parquet",
        annotations=annotations_of,
        model=model_input,
    output:
        "results/{dataset}/screening/{model}/shard-{shard}.parquet",
    log:
        "logs/screen/{dataset}/{model}/shard-{shard}.log",
    benchmark:
        "benchmarks/screen/{dataset}/{model}/shard-{shard}.tsv"
    priority: 20
    conda:
        "../../envs/models.yaml"
    threads: model_job("screen_shard", "threads")
    resources:
        **model_job_resource_set("screen_shard"),
    params:
        **model_job_params(),
        experiment="screening",
        settings={},
        shards=config["screening"]["shards"],
        max_new_tokens=screening_settings()["max_new_tokens"],
    script:
        "../scripts/run_experiment.py"


rule gather_screening:
    """Gather the shards (no sample missing or twice), parse and score on CPU."""
    input:
        shards=lambda w: expand(
            "results/{{dataset}}/screening/{{model}}/shard-{shard}.parquet",
            shard=range(config["screening"]["shards"]),
        ),
        samples="results/{dataset}/samples.parquet",
        annotations=annotations_of,
        parser=parser_code(),
    output:
        "results/{dataset}/screening/{model}/answers.parquet",
    log:
        "logs/gather_screening/{dataset}/{model}.log",
    priority: 20
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        family=lambda w: MODELS[w.model]["family"],
    script:
        "../scripts/score_rows.py"


rule hallucination_filter:
    """Per model: identified on the original, not on the object-removed image."""
    input:
        "results/{dataset}/screening/{model}/answers.parquet",
    output:
        "results/{dataset}/screening/{model}/kept.parquet",
    log:
        "logs/hallucination_filter/{dataset}/{model}.log",
    priority: 20
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        identify_with=config["screening"]["identify_with"],
    script:
        "../scripts/hallucination_filter.py"


# A checkpoint: the DAG is re-evaluated after it, and the experiments depend on its small ids
# file, which Snakemake compares by checksum. So a rescoring that leaves the subset as it was (a
# parser fix) reruns no experiment's model job, and one that changes it reruns them.
checkpoint probing_subset:
    """Intersection of the models' filters, the counts table, baseline accuracy and FPR tables."""
    input:
        samples="results/{dataset}/samples.parquet",
        kept=lambda w: expand(
            "results/{{dataset}}/screening/{model}/kept.parquet",
            model=config["run"]["models"],
        ),
        answers=lambda w: expand(
            "results/{{dataset}}/screening/{model}/answers.parquet",
            model=config["run"]["models"],
        ),
    output:
        subset="results/{dataset}/probing_subset.parquet",
        ids="results/{dataset}/probing_subset_ids.txt",
        counts=report(
            "results/{dataset}/tables/screening_counts.tsv",
            caption="../report/screening_counts.rst",
            category="Screening",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "probing subset counts"},
        ),
        accuracy=report(
            "results/{dataset}/tables/baseline_accuracy.tsv",
            caption="../report/baseline_accuracy.rst",
            category="Screening",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "baseline accuracy"},
        ),
        fpr=report(
            "results/{dataset}/tables/false_positive_rates.tsv",
            caption="../report/false_positive_rates.rst",
            category="Screening",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "false positive rates"},
        ),
    log:
        "logs/probing_subset/{dataset}.log",
    priority: 20
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        models=config["run"]["models"],
        paper_names=paper_names(config["run"]["models"]),
        kind=lambda w: ds(w)["kind"],
    script:
        "../scripts/probing_subset.py"
