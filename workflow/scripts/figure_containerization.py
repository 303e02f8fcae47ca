import pandas as pd

from vlmloc.figures.container_figures import plot_fig1, plot_fig9
from vlmloc.tables.containers import fig9_examples
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p, out = snakemake.params, snakemake.output
    cells = pd.read_csv(snakemake.input.cells, sep="\t")
    plot_fig1(cells, p.metric, out.fig1, out.fig1_pdf)
    rows = {m: pd.read_parquet(f) for m, f in zip(p.models, snakemake.input.rows, strict=True)}
    examples = fig9_examples(rows, pd.read_parquet(snakemake.input.samples), p.examples)
    plot_fig9(examples, out.fig9, out.fig9_pdf)
    log.info("Fig 1 for %d models, Fig 9 with %d panels", cells["model"].nunique(), len(examples))
