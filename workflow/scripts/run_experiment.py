# Rules screen_shard and run_experiment: one shard of an experiment's samples through all of its
# conditions -> RAW rows (answers as generated, or teacher-forced scores). Scoring happens in a
# CPU rule after it (score_rows.py), so a parser fix reruns no model job.
import pandas as pd
import torch

from vlmloc.data.coco import load_json
from vlmloc.data.inpainting import shard_of
from vlmloc.data.samples import categories_of, other_objects, read_samples
from vlmloc.experiments import ShardJob, get_experiment, run_shard
from vlmloc.experiments.base import RAW_COLUMNS
from vlmloc.outputs import write_parquet
from vlmloc.runner import Runner
from vlmloc.vision_cache import VisionCache
from vlmloc.workflow.jobs import load_job_adapter
from vlmloc.workflow.logs import logged
from vlmloc.workflow.memory import fit_job_on_gpu

with logged(snakemake) as log:
    p = snakemake.params
    adapter = load_job_adapter(p.model, p.device, snakemake.threads)
    log.info("%s on %s (%d threads)", snakemake.wildcards.model, adapter.device, snakemake.threads)

    experiment = get_experiment(p.experiment)
    shard, shards = int(snakemake.wildcards.shard), p.shards
    samples = read_samples(snakemake.input.samples, snakemake.input.get("subset"))
    # the whole probing subset: mediation pairs are drawn from it
    pool = samples.merge(pd.read_parquet(snakemake.input.removed), on="sample_id", how="left")
    samples = shard_of(pool, shard, shards)
    coco = load_json(snakemake.input.annotations)
    categories, present = categories_of(coco, samples)
    reason = experiment.skip_reason(adapter)
    if reason:
        log.warning(
            "experiment %s skipped for %s: %s", p.experiment, snakemake.wildcards.model, reason
        )
        samples = samples.iloc[:0]
    stats = (
        torch.load(snakemake.input.mean, weights_only=True) if snakemake.input.get("mean") else {}
    )
    settings, batch_size = dict(p.settings), p.batch_size
    if adapter.device.type == "cuda" and len(samples):
        # one GPU per job: the batch sizes shrink to what fits it (vlmloc.workflow.memory)
        fitted = fit_job_on_gpu(
            adapter,
            batch_size,
            settings,
            list(zip(samples["width"], samples["height"], strict=True)),
            max(dict(p.max_new_tokens).values()),
            reserved_bytes=p.vision_cache_mb * 2**20,
            fraction=p.gpu_memory_fraction,
        )
        log.info("batch sizes that fit the GPU: %s (configured: batch %d)", fitted, batch_size)
        batch_size = fitted.pop("batch_size")
        if "internal_batch_size" in fitted:
            settings["integrated_gradients"] = {
                **settings["integrated_gradients"],
                "internal_batch_size": fitted.pop("internal_batch_size"),
            }
        settings.update(fitted)
    runner = Runner(adapter, batch_size=batch_size, pixel_cache=max(256, len(samples)))
    job = ShardJob(
        adapter,
        runner,
        samples,
        categories,
        settings,
        dict(p.max_new_tokens),
        mean=stats.get("mean"),
        embedding_stats=stats,
        present=present,
        pool=pool,
        others=other_objects(coco, samples),
        upstream={
            k.removeprefix("upstream_"): v
            for k, v in snakemake.input.items()
            if k.startswith("upstream_")
        },
    )
    log.info("%s: %d samples (shard %d/%d)", p.experiment, len(samples), shard, shards)
    cache = VisionCache.from_mb(p.vision_cache_mb)
    with cache.installed(adapter):
        raw = run_shard(experiment, job, log)
    log.info(
        "vision cache: %d tower calls, %d views computed, %d reused (%.0f MiB held)",
        cache.calls,
        cache.views_computed,
        cache.hits,
        cache.bytes / 2**20,
    )
    write_parquet(raw if len(raw) else pd.DataFrame(columns=RAW_COLUMNS), snakemake.output[0])
    log.info(
        "%d raw rows, %d cut off at max_new_tokens",
        len(raw),
        int(raw["truncated"].sum()) if len(raw) else 0,
    )
