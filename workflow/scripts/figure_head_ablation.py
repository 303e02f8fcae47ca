import pandas as pd

from vlmloc.figures.head_figures import head_ablation_figure, save
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    curves = pd.read_csv(snakemake.input.curves, sep="\t")
    auc = pd.read_csv(snakemake.input.auc, sep="\t")
    contrasts = pd.read_csv(snakemake.input.contrasts, sep="\t")
    save(head_ablation_figure(curves, auc, contrasts), snakemake.output.png, snakemake.output.pdf)
    log.info("Fig 5 for %d models", curves["model"].nunique() if len(curves) else 0)
