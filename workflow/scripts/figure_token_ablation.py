import pandas as pd

from vlmloc.figures.token_ablation_figures import plot_token_ablation
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    table = pd.read_csv(snakemake.input[0], sep="\t")
    plot_token_ablation(table, snakemake.output.png, snakemake.output.pdf)
    log.info("figure for %d models", table["model"].nunique() if len(table) else 0)
