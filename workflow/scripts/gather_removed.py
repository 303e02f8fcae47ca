import pandas as pd

from vlmloc.gather import check_gathered, read_upstream
from vlmloc.outputs import write_parquet
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    index = pd.concat(read_upstream(snakemake.input.shards), ignore_index=True)
    check_gathered(
        index["sample_id"],
        pd.read_parquet(snakemake.input.samples)["sample_id"],
        "object-removed images",
    )
    index = index.sort_values("sample_id", kind="stable").reset_index(drop=True)
    write_parquet(index, snakemake.output[0])
    log.info("%d object-removed images from %d shards", len(index), len(snakemake.input.shards))
