import pandas as pd

from vlmloc.figures.screening_figures import localization_examples
from vlmloc.workflow.logs import logged

with logged(snakemake):
    answers = {
        m: pd.read_parquet(p)
        for m, p in zip(snakemake.params.models, snakemake.input.answers, strict=True)
    }
    localization_examples(
        pd.read_parquet(snakemake.input.samples), answers, snakemake.params.n, snakemake.output[0]
    )
