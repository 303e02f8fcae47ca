import pandas as pd

from vlmloc.figures.screening_figures import baseline_accuracy
from vlmloc.workflow.logs import logged

with logged(snakemake):
    baseline_accuracy(pd.read_csv(snakemake.input[0], sep="\t"), snakemake.output[0])
