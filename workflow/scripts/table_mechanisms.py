import pandas as pd

from vlmloc.experiments.mechanisms_summary import format_verdicts, verdicts
from vlmloc.workflow import logged, write_tsv

with logged(snakemake) as log:
    s, i = dict(snakemake.params.settings), snakemake.input
    table = verdicts(
        pd.read_csv(i.cells, sep="\t"),
        pd.read_csv(i.shuffle, sep="\t"),
        pd.read_csv(i.best, sep="\t"),
        content=s["content"],
        container=s["container"],
        paddings=list(s["paddings"]),
        method=s["probe_method"],
        probe_tolerance=s["probe_tolerance"],
        shuffle_ratio=s["shuffle_ratio"],
    )
    write_tsv(table, snakemake.output.tsv)
    with open(snakemake.output.md, "w") as fh:
        fh.write(format_verdicts(table))
    for r in table.itertuples():
        log.info(
            "%s %s: %.3f holds=%s predicted=%s", r.verdict, r.model, r.value, r.holds, r.predicted
        )
