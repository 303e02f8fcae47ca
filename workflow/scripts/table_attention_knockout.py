import pandas as pd

from vlmloc.outputs import write_tsv
from vlmloc.tables.knockout import knockout_summary, knockout_table
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    rows = {m: pd.read_parquet(f) for m, f in zip(p.models, snakemake.input, strict=True)}
    table = knockout_table(rows, dict(p.bootstrap))
    write_tsv(table, snakemake.output.layers)
    write_tsv(knockout_summary(table, dict(p.paper_names)), snakemake.output.summary)
    log.info(
        "knockout: %d conditions over %d models",
        len(table),
        table["model"].nunique() if len(table) else 0,
    )
