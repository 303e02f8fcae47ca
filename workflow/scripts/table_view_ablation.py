import pandas as pd

from vlmloc.outputs import write_tsv
from vlmloc.tables.views import format_table3, size_drops, table3
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    for model, why in p.skipped.items():
        log.info("%s skipped: %s", model, why)
    rows = {m: pd.read_parquet(f) for m, f in zip(p.models, snakemake.input, strict=True)}
    table = table3(rows, dict(p.paper_names), dict(p.bootstrap))
    write_tsv(table, snakemake.output.tsv)
    with open(snakemake.output.md, "w") as fh:
        fh.write(
            format_table3(table)
            if len(table)
            else "No model with local views ran this experiment.\n"
        )
    write_tsv(
        size_drops(rows, dict(p.paper_names), p.figure_padding, dict(p.bootstrap)),
        snakemake.output.sizes,
    )
    for model, t in table.groupby("model"):
        log.info(
            "%s: %d samples with local views, %d single-view excluded",
            model,
            t["n"].max(),
            t["n_excluded"].iloc[0],
        )
