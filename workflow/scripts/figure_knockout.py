import pandas as pd

from vlmloc.figures.knockout_figures import plot_fig3, plot_fig12
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    table = pd.read_csv(snakemake.input[0], sep="\t")
    out = snakemake.output
    plot_fig3(table, dict(snakemake.params.fig3), out.fig3, out.fig3_pdf)
    plot_fig12(
        table, {m: list(v) for m, v in snakemake.params.fig12.items()}, out.fig12, out.fig12_pdf
    )
    log.info("Fig 3 and Fig 12 for %d models", table["model"].nunique() if len(table) else 0)
