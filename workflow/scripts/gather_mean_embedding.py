# The model's mean visual embedding from the shards' sums (fails on a missing or twice-summed image).
import torch

from vlmloc.gather import read_upstream
from vlmloc.mean_embedding import combine_embedding_sums
from vlmloc.outputs import save_torch
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    stats = combine_embedding_sums(
        read_upstream(snakemake.input, lambda f: torch.load(f, weights_only=True))
    )
    stats["image_set"] = dict(snakemake.params.image_set)
    save_torch(stats, snakemake.output[0])
    log.info(
        "%d images, %d visual tokens from %d shards; token norm %.3f +- %.3f",
        stats["n_images"],
        stats["n_tokens"],
        len(snakemake.input),
        stats["norm_mean"],
        stats["norm_std"],
    )
