import pandas as pd

from vlmloc.data.coco import load_json
from vlmloc.data.inpainting import shard_of
from vlmloc.experiments.screening import run_screening
from vlmloc.models import load_adapter
from vlmloc.runner import Runner
from vlmloc.workflow import logged, resolve_device, write_parquet

with logged(snakemake) as log:
    m, s = dict(snakemake.params.model), snakemake.params.screening
    shard = int(snakemake.wildcards.shard)
    samples = shard_of(pd.read_parquet(snakemake.input.samples), shard, s["shards"])
    categories = [c["name"] for c in sorted(load_json(snakemake.input.annotations)["categories"], key=lambda c: c["id"])]
    device = resolve_device(snakemake.params.device)
    log.info("%s on %s: %d samples (shard %d/%d)", snakemake.wildcards.model, device, len(samples), shard, s["shards"])
    adapter = load_adapter(m.pop("family"), m.pop("path"), device=device, **m)
    runner = Runner(adapter, batch_size=snakemake.params.batch_size)
    answers = run_screening(runner, samples, pd.read_parquet(snakemake.input.removed), categories, s["max_new_tokens"])
    write_parquet(answers, snakemake.output[0])
    log.info("%d answers, %d unparsed, %d cut off at max_new_tokens", len(answers),
             int((answers["status"] != "ok").sum()), int(answers["truncated"].sum()))  # fmt: skip
