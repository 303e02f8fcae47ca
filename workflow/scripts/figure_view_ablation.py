import pandas as pd

from vlmloc.figures.container_figures import plot_fig10
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    drops = pd.read_csv(snakemake.input[0], sep="\t")
    plot_fig10(drops, snakemake.output.png, snakemake.output.pdf)
    log.info("Fig 10: %d bars", len(drops))
