import pandas as pd

from vlmloc.outputs import write_tsv
from vlmloc.tables.containers import format_table2, table2
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    rows = {m: pd.read_parquet(f) for m, f in zip(p.models, snakemake.input, strict=True)}
    table = table2(rows, dict(p.paper_names), dict(p.bootstrap))
    write_tsv(table, snakemake.output.tsv)
    with open(snakemake.output.md, "w") as fh:
        fh.write(format_table2(table, list(p.models)))
    log.info("Table 2: %d rows", len(table))
