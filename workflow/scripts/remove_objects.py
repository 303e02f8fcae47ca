import pandas as pd

from vlmloc.data.inpainting import remove_objects, shard_of
from vlmloc.outputs import write_parquet
from vlmloc.workflow.jobs import resolve_device
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = dict(snakemake.params.removal)
    shard, n_shards = int(snakemake.wildcards.shard), p.pop("shards")
    rows = shard_of(pd.read_parquet(snakemake.input.samples), shard, n_shards)
    log.info("shard %d/%d: %d samples, backend %s", shard, n_shards, len(rows), p["backend"])
    index = remove_objects(
        rows,
        snakemake.output.images,
        backend=p.pop("backend"),
        exact_dir=snakemake.input.exact or None,
        device=resolve_device(snakemake.params.device),
        **p,
    )
    write_parquet(index, snakemake.output.index)
