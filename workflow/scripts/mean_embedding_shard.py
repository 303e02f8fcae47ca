# Rule mean_embedding_shard: sums over the visual tokens (at the LLM input) of one shard of the
# mean visual embedding's image set; gather_mean_embedding adds the shards up.

from vlmloc.data.image_sets import images_in_image_set
from vlmloc.mean_embedding import embedding_sums, shard_indices
from vlmloc.outputs import save_torch
from vlmloc.workflow.jobs import load_job_adapter
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    adapter = load_job_adapter(p.model, p.device, snakemake.threads)
    log.info("%s on %s (%d threads)", snakemake.wildcards.model, adapter.device, snakemake.threads)

    images = images_in_image_set(p.image_set, p.shapes_spec)
    shard, shards = int(snakemake.wildcards.shard), p.shards
    indices = shard_indices(len(images), shard, shards)
    log.info(
        "mean visual embedding, shard %d/%d: %d of %d images (%s)",
        shard,
        shards,
        len(indices),
        len(images),
        p.image_set["images"],
    )
    sums = embedding_sums(adapter, images, indices, batch_size=p.batch_size, progress=True)
    save_torch(sums, snakemake.output[0])
    log.info("%d visual tokens summed", sums["n_tokens"])
