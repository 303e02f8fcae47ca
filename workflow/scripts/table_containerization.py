import pandas as pd

from vlmloc.outputs import write_tsv
from vlmloc.tables.containers import containerization_cells
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    parts = []
    for model, path in zip(p.models, snakemake.input, strict=True):
        cells = containerization_cells(pd.read_parquet(path), p.metric, dict(p.bootstrap))
        cells.insert(0, "model", model)
        parts.append(cells)
        diag = cells[cells["padding"] == cells["scale"]]
        log.info(
            "%s: %s",
            model,
            ", ".join(
                f"p=s={int(r.padding)}: {r.mean:.1f} [{r.lo:.1f}, {r.hi:.1f}]"
                for r in diag.itertuples()
            ),
        )
    write_tsv(pd.concat(parts, ignore_index=True), snakemake.output[0])
