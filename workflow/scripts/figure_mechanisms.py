import pandas as pd

from vlmloc.figures.mechanism_figures import plot_mechanisms
from vlmloc.workflow import logged

with logged(snakemake) as log:
    s, i, out = dict(snakemake.params.settings), snakemake.input, snakemake.output
    plot_mechanisms(
        pd.read_csv(i.cells, sep="\t"),
        pd.read_csv(i.shuffle, sep="\t"),
        pd.read_csv(i.layers, sep="\t"),
        pd.read_csv(i.verdicts, sep="\t"),
        content=s["content"],
        container=s["container"],
        paddings=list(s["paddings"]),
        method=s["probe_method"],
        png=out.png,
        pdf=out.pdf,
    )
    log.info("mechanisms figure: %s vs %s", s["content"], s["container"])
