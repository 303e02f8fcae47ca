import pandas as pd

from vlmloc.outputs import write_tsv
from vlmloc.tables.token_ablation import format_table1, table1, table4
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    rows = {m: pd.read_parquet(f) for m, f in zip(p.models, snakemake.input, strict=True)}
    t1 = table1(rows, dict(p.paper_names), dict(p.bootstrap))
    write_tsv(t1, snakemake.output.table1)
    write_tsv(table4(t1, dict(p.paper_names)), snakemake.output.table4)
    with open(snakemake.output.table1_md, "w") as f:
        f.write(format_table1(t1, [m for m in p.models if m in set(t1.get("model", []))]))
    log.info("Table 1: %d rows for %d models", len(t1), len(rows))
