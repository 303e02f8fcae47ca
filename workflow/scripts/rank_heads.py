# Gather one model's mediation shards (every pair once per condition and task) and rank its
# heads by mean MF.
from pathlib import Path

import pandas as pd

from vlmloc.experiments.head_ranking import head_scores, pair_mf
from vlmloc.gather import read_upstream
from vlmloc.outputs import write_parquet
from vlmloc.scoring import check_complete
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    rows = pd.concat(read_upstream(snakemake.input.shards), ignore_index=True)
    if len(rows):
        check_complete(rows, Path(snakemake.input.subset).read_text().split())
    heads = head_scores(rows, float(p.min_log_gap), dict(p.bootstrap))
    heads.insert(0, "model", snakemake.wildcards.model)
    write_parquet(heads, snakemake.output.heads)
    write_parquet(pair_mf(rows, float(p.min_log_gap)), snakemake.output.pairs)
    for task, t in heads.groupby("task", sort=False):
        kept, total = int(t["n_pairs"].max()), int(t["n_pairs_total"].max())
        log.info(
            "%s: %d of %d pairs kept (|log gap| >= %g), %d heads",
            task,
            kept,
            total,
            p.min_log_gap,
            len(t),
        )
        if kept == 0:
            log.warning(
                "%s: no pair kept; its MF scores are NaN (lower mediation.min_log_gap?)", task
            )
    log.info(
        "%d samples excluded from the experiment",
        int(heads["n_excluded"].max()) if len(heads) else 0,
    )
