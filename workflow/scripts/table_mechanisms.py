import pandas as pd

from vlmloc.outputs import write_tsv
from vlmloc.tables.mechanisms import format_verdicts, verdicts
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    i = snakemake.input
    tables = [pd.read_csv(f, sep="\t") for f in (i.cells, i.shuffle, i.best)]
    settings = snakemake.params.settings
    shuffle_rows = {
        settings["content"]: pd.read_parquet(i.shuffle_content),
        settings["container"]: pd.read_parquet(i.shuffle_container),
    }
    table = verdicts(*tables, **settings, shuffle_rows=shuffle_rows)
    write_tsv(table, snakemake.output.tsv)
    with open(snakemake.output.md, "w") as fh:
        fh.write(format_verdicts(table))
    for r in table.itertuples():
        log.info(
            "%s %s: %.3f holds=%s predicted=%s", r.verdict, r.model, r.value, r.holds, r.predicted
        )
