import pandas as pd

from vlmloc.outputs import write_tsv
from vlmloc.tables.token_ablation import table5
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    rows = {m: pd.read_parquet(f) for m, f in zip(p.models, snakemake.input, strict=True)}
    t5 = table5(rows, dict(p.paper_names), dict(p.bootstrap))
    write_tsv(t5, snakemake.output[0])
    log.info("Table 5: %d rows for %d models", len(t5), len(rows))
