import pandas as pd

from vlmloc.figures.data_figures import object_removal_examples
from vlmloc.workflow.logs import logged

with logged(snakemake):
    object_removal_examples(
        pd.read_parquet(snakemake.input.samples),
        pd.read_parquet(snakemake.input.removed),
        n=snakemake.params.n,
        out_png=snakemake.output[0],
    )
