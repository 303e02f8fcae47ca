# Paper sec. 3.2 and appendix 8: positional probes at every layer of the vision backbone, the
# projector and the LLM (Fig 2, Fig 11). One model job per model streams the train images through
# the model (SGD: `epochs` passes; ridge and LDA: the first pass's statistics), less the
# `validation_fraction` held out to choose the best layer, and scores the validation and test
# images; with `controls.untrained`, the same on the re-initialised model. The tables and figures
# read its rows.


rule probe_model:
    """Row and column probes at every site of one model (and of its re-initialised twin, the
    untrained control), trained and scored on validation and test images without storing
    features (summary, per-position and timing rows)."""
    input:
        model=model_input,
    output:
        summary="results/probes/{model}/summary.parquet",
        cells="results/probes/{model}/cells.parquet",
        timing="results/probes/{model}/timing.parquet",
    log:
        "logs/probes/{model}.log",
    benchmark:
        "benchmarks/probes/{model}.tsv"
    conda:
        "../../envs/models.yaml"
    threads: model_job("probe_model", "threads")
    resources:
        **model_job_resource_set("probe_model"),
    params:
        model=lambda w: model_settings(w.model),
        device=lambda w: MODELS[w.model]["device"],
        batch_size=lambda w: PROBES["batch_size"] or MODELS[w.model]["batch_size"],
        settings=probe_settings(),
        shapes_spec=probe_shapes_spec(),
    script:
        "../scripts/probe_model.py"


rule table_probe_layers:
    """Every model's, method's and site's probe accuracy (row, column, mean, both), controls and
    chance; InternVL's thumbnail and tiles also apart."""
    input:
        summary=probe_rows("summary"),
        cells=probe_rows("cells"),
    output:
        report(
            "results/probes/tables/probe_layers.tsv",
            caption="../report/probe_layers.rst",
            category="Positional probes",
            labels={"table": "accuracy per layer"},
        ),
    log:
        "logs/tables/probes/probe_layers.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        **probe_presentation(),
    script:
        "../scripts/table_probes.py"


rule table_probe_best_layer:
    """The best LLM layer per model and method (chosen on validation, test accuracy there, the
    untrained control's beside it) beside the paper's (text and appendix disagree)."""
    input:
        summary=probe_rows("summary"),
    output:
        report(
            "results/probes/tables/probe_best_layer.tsv",
            caption="../report/probe_best_layer.rst",
            category="Positional probes",
            labels={"table": "best LLM layer"},
        ),
    log:
        "logs/tables/probes/probe_best_layer.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        **probe_presentation("paper_names", "methods"),
    script:
        "../scripts/table_probes.py"


rule table_probe_methods:
    """SGD (the paper's) against the one-pass closed forms: accuracy, forward passes, seconds,
    and the forward passes at the paper's scale."""
    input:
        summary=probe_rows("summary"),
        timing=probe_rows("timing"),
    output:
        report(
            "results/probes/tables/probe_methods.tsv",
            caption="../report/probe_methods.rst",
            category="Positional probes",
            labels={"table": "methods and cost"},
        ),
    log:
        "logs/tables/probes/probe_methods.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        **probe_presentation(),
    script:
        "../scripts/table_probes.py"


rule table_probe_line_breaks:
    """Line breaks (Fig 2 right): first / last column and corners against the rest, at the
    projector and the best LLM layer."""
    input:
        summary=probe_rows("summary"),
        cells=probe_rows("cells"),
    output:
        report(
            "results/probes/tables/probe_line_breaks.tsv",
            caption="../report/probe_line_breaks.rst",
            category="Positional probes",
            labels={"table": "line breaks"},
        ),
    log:
        "logs/tables/probes/probe_line_breaks.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        **probe_presentation("figure_method"),
    script:
        "../scripts/table_probes.py"


rule figure_probes_fig2:
    """Fig 2: accuracy per layer across backbone, projector and LLM (untrained control dashed,
    chance-level controls dotted), per-position accuracy at the best LLM layer."""
    input:
        summary=probe_rows("summary"),
        cells=probe_rows("cells"),
    output:
        png=report(
            "results/probes/figures/probes_fig2.png",
            caption="../report/probes_fig2.rst",
            category="Positional probes",
            labels={"figure": "Fig 2"},
        ),
        pdf="results/probes/figures/probes_fig2.pdf",
    log:
        "logs/figures/probes/fig2.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        **probe_presentation("figure_method"),
    script:
        "../scripts/figure_probes.py"


rule figure_probes_fig11:
    """Fig 11: per-position accuracy at the projector and selected LLM layers, per model."""
    input:
        summary=probe_rows("summary"),
        cells=probe_rows("cells"),
    output:
        png=report(
            "results/probes/figures/probes_fig11.png",
            caption="../report/probes_fig11.rst",
            category="Positional probes",
            labels={"figure": "Fig 11"},
        ),
        pdf="results/probes/figures/probes_fig11.pdf",
    log:
        "logs/figures/probes/fig11.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        **probe_presentation("figure_method", "fig11_layers"),
    script:
        "../scripts/figure_probes.py"


rule figure_probe_methods:
    """Accuracy per layer of each probe method (SGD, LDA, least squares), per model."""
    input:
        summary=probe_rows("summary"),
    output:
        png=report(
            "results/probes/figures/probe_methods.png",
            caption="../report/probe_methods_figure.rst",
            category="Positional probes",
            labels={"figure": "methods"},
        ),
        pdf="results/probes/figures/probe_methods.pdf",
    log:
        "logs/figures/probes/methods.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        **probe_presentation("methods"),
    script:
        "../scripts/figure_probes.py"
