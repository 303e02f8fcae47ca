# Toys with a known mechanism (config/mechanisms.yaml): the content toy's tokens carry their
# position and the object's box, the container toy's only their category. Each experiment's
# verdict, by a rule stated in advance, read from the experiments' own tables.


rule table_mechanisms:
    """Each experiment's verdict for the content and the container toy, rule and prediction."""
    input:
        unpack(lambda w: mechanism_tables()),
    output:
        tsv=report(
            "results/mechanisms/tables/mechanism_verdicts.tsv",
            caption="../report/mechanism_verdicts.rst",
            category="Known mechanisms",
            labels={"table": "verdicts"},
        ),
        md="results/mechanisms/tables/mechanism_verdicts.md",
    log:
        "logs/tables/mechanisms.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=lambda w: mechanism_params(),
    script:
        "../scripts/table_mechanisms.py"


rule figure_mechanisms:
    """The two toys side by side: Fig 1's diagonal, Table 2's costs, the probes per layer."""
    input:
        unpack(lambda w: mechanism_tables()),
        layers="results/probes/tables/probe_layers.tsv",
        verdicts="results/mechanisms/tables/mechanism_verdicts.tsv",
    output:
        png=report(
            "results/mechanisms/figures/mechanisms.png",
            caption="../report/mechanisms.rst",
            category="Known mechanisms",
            labels={"figure": "content vs container toy"},
        ),
        pdf="results/mechanisms/figures/mechanisms.pdf",
    log:
        "logs/figures/mechanisms.log",
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        settings=lambda w: mechanism_params(),
    script:
        "../scripts/figure_mechanisms.py"
