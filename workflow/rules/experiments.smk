# The paper's experiments on one layer: the mean visual embedding per model, ONE model-job rule
# for every experiment (one shard of the probing subset through all of its conditions, raw
# rows), one CPU rule that gathers and scores them, then a rule per table and figure.


rule mean_embedding_shard:
    """Sums over the visual tokens (at the LLM input) of one shard of the image set of the mean
    visual embedding (paper: ImageNet val)."""
    input:
        model=model_input,
    output:
        "results/mean_embedding/{model}/shard-{shard}.pt",
    log:
        "logs/mean_embedding/{model}/shard-{shard}.log",
    benchmark:
        "benchmarks/mean_embedding/{model}/shard-{shard}.tsv"
    priority: 20
    conda:
        "../../envs/models.yaml"
    threads: model_job("mean_embedding_shard", "threads")
    resources:
        **model_job_resource_set("mean_embedding_shard"),
    params:
        model=lambda w: model_settings(w.model),
        device=lambda w: MODELS[w.model]["device"],
        batch_size=config["mean_embedding"]["batch_size"],
        shards=config["mean_embedding"]["shards"],
        image_set=config["mean_embedding"],
        shapes_spec=(
            shapes_spec(config["mean_embedding"]["generated_like"])
            if config["mean_embedding"]["images"] == "generated"
            else {}
        ),
    script:
        "../scripts/mean_embedding_shard.py"


rule gather_mean_embedding:
    """The model's mean visual embedding and token-norm mean / std from the shards' sums (fails
    when an image is missing or summed twice)."""
    input:
        lambda w: expand(
            "results/mean_embedding/{{model}}/shard-{shard}.pt",
            shard=range(config["mean_embedding"]["shards"]),
        ),
    output:
        "results/mean_embedding/{model}.pt",
    log:
        "logs/gather_mean_embedding/{model}.log",
    priority: 20
    conda:
        "../../envs/models.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        image_set=config["mean_embedding"],
    script:
        "../scripts/gather_mean_embedding.py"


rule run_experiment:
    """One shard of the probing subset through every condition of one experiment (raw rows)."""
    input:
        unpack(upstream_input),
        samples="results/{dataset}/samples.parquet",
        subset="results/{dataset}/probing_subset_ids.txt",
        removed="results/{dataset}/removed.parquet",
        annotations=annotations_of,
        model=model_input,
        mean=mean_embedding_input,
    output:
        "results/{dataset}/experiments/{experiment}/{model}/raw/shard-{shard}.parquet",
    log:
        "logs/experiments/{dataset}/{experiment}/{model}/shard-{shard}.log",
    benchmark:
        "benchmarks/experiments/{dataset}/{experiment}/{model}/shard-{shard}.tsv"
    priority: 10
    conda:
        "../../envs/models.yaml"
    threads: model_job("run_experiment", "threads")
    resources:
        **model_job_resource_set("run_experiment"),
    params:
        **model_job_params(),
        experiment=lambda w: w.experiment,
        settings=lambda w: experiment_settings(w.experiment, w.model),
        shards=lambda w: EXPERIMENTS[w.experiment]["shards"],
        max_new_tokens=dict(sorted(config["screening"]["max_new_tokens"].items())),
    script:
        "../scripts/run_experiment.py"


rule score_experiment:
    """Gather the shards (no sample missing or twice), parse and score on CPU."""
    input:
        shards=lambda w: expand(
            "results/{{dataset}}/experiments/{{experiment}}/{{model}}/raw/shard-{shard}.parquet",
            shard=range(EXPERIMENTS[w.experiment]["shards"]),
        ),
        samples="results/{dataset}/samples.parquet",
        subset="results/{dataset}/probing_subset_ids.txt",
        annotations=annotations_of,
        parser=parser_code(),
    output:
        "results/{dataset}/experiments/{experiment}/{model}/rows.parquet",
    log:
        "logs/score_experiment/{dataset}/{experiment}/{model}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        family=lambda w: MODELS[w.model]["family"],
    script:
        "../scripts/score_rows.py"


rule table_token_ablation:
    """Table 1 (all strategies) and Table 4 (random, std over seeds), beside the paper's values."""
    input:
        experiment_rows("token_ablation"),
    output:
        table1=report(
            "results/{dataset}/tables/table1_token_ablation.tsv",
            caption="../report/table1_token_ablation.rst",
            category="Token ablation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "Table 1"},
        ),
        table1_md="results/{dataset}/tables/table1_token_ablation.md",
        table4=report(
            "results/{dataset}/tables/table4_random_ablation.tsv",
            caption="../report/table4_random_ablation.rst",
            category="Token ablation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "Table 4"},
        ),
    log:
        "logs/tables/token_ablation/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=config["run"]["models"],
        paper_names=paper_names(config["run"]["models"]),
        bootstrap=config["bootstrap"],
    script:
        "../scripts/table_token_ablation.py"


rule figure_token_ablation:
    """Accuracy against the share of tokens removed, one line per strategy, per task and model."""
    input:
        "results/{dataset}/tables/table1_token_ablation.tsv",
    output:
        png=report(
            "results/{dataset}/figures/token_ablation.png",
            caption="../report/token_ablation_figure.rst",
            category="Token ablation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "accuracy vs tokens removed"},
        ),
        pdf="results/{dataset}/figures/token_ablation.pdf",
    log:
        "logs/figures/token_ablation/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/figure_token_ablation.py"


rule figure_token_grid:
    """Appendix Fig. 7 for one model: the object mask of a small, a medium and a large object
    on each of the model's token grids, at every padding of the token ablation."""
    input:
        samples="results/{dataset}/samples.parquet",
        subset="results/{dataset}/probing_subset_ids.txt",
        model=model_geometry_input,
    output:
        png=report(
            "results/{dataset}/figures/token_grid_fig7_{model}.png",
            caption="../report/token_grid_fig7.rst",
            category="Token ablation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "Fig 7 ({model})"},
        ),
        pdf="results/{dataset}/figures/token_grid_fig7_{model}.pdf",
    log:
        "logs/figures/token_grid_fig7/{dataset}/{model}.log",
    conda:
        "../../envs/models.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        model=lambda w: model_settings(w.model),
        paddings=lambda w: experiment_settings("token_ablation", w.model)["paddings"],
    script:
        "../scripts/figure_token_grid.py"


rule figure_token_grid_ig:
    """Integrated gradients on the token grid (beyond the paper): the importance of every visual
    token of Fig 7's samples for one task, as the token-ablation job stored it."""
    input:
        samples="results/{dataset}/samples.parquet",
        subset="results/{dataset}/probing_subset_ids.txt",
        model=model_geometry_input,
        rows="results/{dataset}/experiments/token_ablation/{model}/rows.parquet",
    output:
        png=report(
            "results/{dataset}/figures/token_grid_ig_{model}_{task}.png",
            caption="../report/token_grid_ig.rst",
            category="Token ablation",
            subcategory="{dataset}",
            labels={
                "dataset": "{dataset}",
                "figure": "IG token grid ({model}, {task})",
            },
        ),
        pdf="results/{dataset}/figures/token_grid_ig_{model}_{task}.pdf",
    log:
        "logs/figures/token_grid_ig/{dataset}/{model}_{task}.log",
    wildcard_constraints:
        task="localization|list",
    conda:
        "../../envs/models.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        model=lambda w: model_settings(w.model),
    script:
        "../scripts/figure_token_grid.py"


rule table_token_ablation_matched:
    """Table 5: object tokens vs as many IG-ranked or random tokens (paper: Pascal VOC)."""
    input:
        experiment_rows("token_ablation_matched"),
    output:
        report(
            "results/{dataset}/tables/table5_token_ablation_matched.tsv",
            caption="../report/table5_token_ablation_matched.rst",
            category="Token ablation",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "Table 5"},
        ),
    log:
        "logs/tables/token_ablation_matched/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=config["run"]["models"],
        paper_names=paper_names(config["run"]["models"]),
        bootstrap=config["bootstrap"],
    script:
        "../scripts/table_token_ablation_matched.py"


rule table_attention_knockout:
    """Every knockout window's accuracy and drop, and the windows that matter most per task."""
    input:
        experiment_rows("attention_knockout"),
    output:
        layers=report(
            "results/{dataset}/tables/knockout_layers.tsv",
            caption="../report/knockout_layers.rst",
            category="Attention knockout",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "knockout per window"},
        ),
        summary=report(
            "results/{dataset}/tables/knockout_summary.tsv",
            caption="../report/knockout_summary.rst",
            category="Attention knockout",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "table": "knockout summary"},
        ),
    log:
        "logs/tables/attention_knockout/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=config["run"]["models"],
        paper_names=paper_names(config["run"]["models"]),
        bootstrap=config["bootstrap"],
    script:
        "../scripts/table_attention_knockout.py"


rule figure_knockout:
    """Fig 3 (accuracy per layer window against the unmodified model) and Fig 12 (the Fig-12
    window sizes, the object mask and the mask padded by +1), both with the random and the
    translated control."""
    input:
        "results/{dataset}/tables/knockout_layers.tsv",
    output:
        fig3=report(
            "results/{dataset}/figures/knockout_fig3.png",
            caption="../report/knockout_fig3.rst",
            category="Attention knockout",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "Fig 3"},
        ),
        fig3_pdf="results/{dataset}/figures/knockout_fig3.pdf",
        fig12=report(
            "results/{dataset}/figures/knockout_fig12.png",
            caption="../report/knockout_fig12.rst",
            category="Attention knockout",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "Fig 12"},
        ),
        fig12_pdf="results/{dataset}/figures/knockout_fig12.pdf",
    log:
        "logs/figures/knockout/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        fig3=knockout_windows("fig3"),
        fig12=knockout_windows("fig12"),
    script:
        "../scripts/figure_knockout.py"
