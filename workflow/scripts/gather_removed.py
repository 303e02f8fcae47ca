import pandas as pd

from vlmloc.workflow import logged, write_parquet

with logged(snakemake) as log:
    index = pd.concat([pd.read_parquet(p) for p in snakemake.input], ignore_index=True)
    index = index.sort_values("sample_id", kind="stable").reset_index(drop=True)
    write_parquet(index, snakemake.output[0])
    log.info("%d object-removed images", len(index))
