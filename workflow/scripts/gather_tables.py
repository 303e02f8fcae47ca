import pandas as pd

from vlmloc.workflow import logged, write_parquet

with logged(snakemake) as log:
    parts = [pd.read_parquet(p) for p in snakemake.input]
    table = pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)
    write_parquet(table, snakemake.output[0])
    log.info("%d rows from %d shards", len(table), len(parts))
