# Rule mean_embedding_shard: sums over the visual tokens (at the LLM input) of one shard of the
# mean visual embedding's image set; gather_mean_embedding adds the shards up.
import torch

from vlmloc.mean_embedding import embedding_sums, shard_indices
from vlmloc.models import load_adapter
from vlmloc.workflow import images_in_image_set, logged, resolve_device, save_torch

with logged(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    p = snakemake.params
    m = dict(p.model)
    device = resolve_device(p.device)
    adapter = load_adapter(m.pop("family"), m.pop("path"), device=device, **m)
    log.info(
        "%s on %s (%d threads), rule %s",
        snakemake.wildcards.model,
        device,
        snakemake.threads,
        snakemake.rule,
    )

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
