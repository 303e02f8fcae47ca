import pandas as pd

from vlmloc.figures.mechanism_figures import plot_mechanisms
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    i, out, settings = snakemake.input, snakemake.output, snakemake.params.settings
    tables = [pd.read_csv(f, sep="\t") for f in (i.cells, i.shuffle, i.layers, i.verdicts)]
    plot_mechanisms(*tables, png=out.png, pdf=out.pdf, **settings)
    log.info("mechanisms figure: %s vs %s", settings["content"], settings["container"])
