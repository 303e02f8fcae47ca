# Gather one experiment's raw shards for one model, check that every sample is there exactly
# once per (condition, task), and parse + score the answers (CPU only, no model).
import pandas as pd

from vlmloc.data.coco import load_json
from vlmloc.data.samples import categories_of, read_samples
from vlmloc.gather import read_upstream
from vlmloc.outputs import write_parquet
from vlmloc.scoring import check_complete, expected_pairs, score_rows
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    shards = read_upstream(snakemake.input.shards)
    raw = pd.concat(shards, ignore_index=True)
    samples = read_samples(snakemake.input.samples, snakemake.input.get("subset"))
    if raw.empty:
        log.warning("no raw rows (empty sample set, or the experiment was skipped for this model)")
        write_parquet(raw, snakemake.output[0])
    else:
        check_complete(raw, samples["sample_id"], expected_pairs(shards))
        categories, _ = categories_of(load_json(snakemake.input.annotations), samples.iloc[:0])
        scored = score_rows(raw, samples, snakemake.params.family, categories)
        write_parquet(scored, snakemake.output[0])
        loc = scored[scored["task"] == "localization"]
        log.info(
            "%d rows from %d shards; %d unparsed boxes",
            len(scored),
            len(snakemake.input.shards),
            int((loc["status"] != "ok").sum()),
        )
