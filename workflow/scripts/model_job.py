# The ONE model-job script: loads the model once and runs, for rule
#   mean_embedding_shard   sums over one shard of the mean visual embedding's image set;
#   probe_model            the positional probes of every site (summary, per-cell and timing rows);
#   screen_shard / run_experiment   one shard of an experiment's conditions -> RAW rows.
# Scoring happens in a CPU rule after it (score_rows.py), so a parser fix reruns no model job.
import pandas as pd
import torch

from vlmloc.data.coco import load_json
from vlmloc.data.inpainting import shard_of
from vlmloc.experiments import ShardJob, get_experiment, run_shard
from vlmloc.experiments.base import RAW_COLUMNS
from vlmloc.mean_embedding import embedding_sums, shard_indices
from vlmloc.models import load_adapter
from vlmloc.runner import Runner
from vlmloc.vision_cache import VisionCache
from vlmloc.workflow import (
    categories_of,
    images_in_image_set,
    logged,
    other_objects,
    read_samples,
    resolve_device,
    save_torch,
    write_parquet,
)

with logged(snakemake) as log:
    torch.set_num_threads(snakemake.threads)
    p = snakemake.params
    m = dict(p.model)
    device = resolve_device(p.device)
    adapter = load_adapter(m.pop("family"), m.pop("path"), device=device, **m)
    log.info("%s on %s (%d threads), rule %s", snakemake.wildcards.model, device, snakemake.threads, snakemake.rule)

    if snakemake.rule == "mean_embedding_shard":
        images = images_in_image_set(p.image_set, p.shapes_spec)
        shard, shards = int(snakemake.wildcards.shard), p.shards
        indices = shard_indices(len(images), shard, shards)
        log.info("mean visual embedding, shard %d/%d: %d of %d images (%s)", shard, shards, len(indices),
                 len(images), p.image_set["images"])  # fmt: skip
        sums = embedding_sums(adapter, images, indices, batch_size=p.batch_size, progress=True)
        save_torch(sums, snakemake.output[0])
        log.info("%d visual tokens summed", sums["n_tokens"])
    elif snakemake.rule == "probe_model":
        from vlmloc.probes import ProbeSettings, fit_and_score, probe_images

        s = dict(p.settings)
        train, test = probe_images(s["train_images"], s["test_images"], s["n_train"], s["n_test"], s["seed"],
                                   p.shapes_spec)  # fmt: skip
        settings = ProbeSettings.from_config(s, p.batch_size)
        log.info("probes: %d train (%.0f%% held out for validation), %d test images (%s / %s), methods %s, %d epochs, "
                 "views %s, untrained control %s", len(train), 100 * settings.validation_fraction, len(test),
                 s["train_images"], s["test_images"], settings.methods, settings.epochs, settings.views,
                 (settings.untrained_methods or settings.methods) if settings.untrained_control else "off")  # fmt: skip
        run = fit_and_score(adapter, train, test, settings)
        for name, rows in (("summary", run.summary), ("cells", run.cells), ("timing", run.timing)):
            write_parquet(pd.DataFrame(rows).assign(model=snakemake.wildcards.model), snakemake.output[name])
        for t in run.timing:
            log.info("%s (%s model): %d train forwards, train %.1f s (forward %.1f s, probes %.1f s), validation %.1f s, "
                     "test %.1f s", t["method"], "trained" if t["variant"] == "true" else t["variant"], t["train_forwards"],
                     t["train_s"], t["forward_s"], t["probe_s"], t["validation_forward_s"], t["test_forward_s"])  # fmt: skip
    else:
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
            log.warning("experiment %s skipped for %s: %s", p.experiment, snakemake.wildcards.model, reason)
            samples = samples.iloc[:0]
        stats = torch.load(snakemake.input.mean, weights_only=True) if snakemake.input.get("mean") else {}
        runner = Runner(adapter, batch_size=p.batch_size, pixel_cache=max(256, len(samples)))
        job = ShardJob(adapter, runner, samples, categories, dict(p.settings), dict(p.max_new_tokens),
                       mean=stats.get("mean"), embedding_stats=stats, present=present, pool=pool,
                       others=other_objects(coco, samples),
                       upstream={k.removeprefix("upstream_"): v for k, v in snakemake.input.items()
                                 if k.startswith("upstream_")})  # fmt: skip
        log.info("%s: %d samples (shard %d/%d)", p.experiment, len(samples), shard, shards)
        cache = VisionCache.from_mb(p.vision_cache_mb)
        with cache.installed(adapter):
            raw = run_shard(experiment, job, log)
        log.info("vision cache: %d tower calls, %d views computed, %d reused (%.0f MiB held)", cache.calls,
                 cache.views_computed, cache.hits, cache.bytes / 2**20)  # fmt: skip
        write_parquet(raw if len(raw) else pd.DataFrame(columns=RAW_COLUMNS), snakemake.output[0])
        log.info("%d raw rows, %d cut off at max_new_tokens", len(raw), int(raw["truncated"].sum()) if len(raw) else 0)
