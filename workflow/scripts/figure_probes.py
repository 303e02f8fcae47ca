# The positional probes' figures (paper Fig 2, app. Fig 11, the methods side by side), one script
# for the three figure rules.
import pandas as pd

from vlmloc.figures.probe_figures import plot_fig2, plot_fig11, plot_methods
from vlmloc.workflow.logs import logged


def read(kind):
    return pd.concat([pd.read_parquet(f) for f in snakemake.input[kind]], ignore_index=True)


with logged(snakemake) as log:
    p, out = snakemake.params, snakemake.output
    models, acc = list(p.models), p.accuracy
    if snakemake.rule == "figure_probes_fig2":
        plot_fig2(read("summary"), read("cells"), models, p.figure_method, acc, out.png, out.pdf)
    elif snakemake.rule == "figure_probes_fig11":
        plot_fig11(
            read("summary"),
            read("cells"),
            models,
            p.figure_method,
            acc,
            dict(p.fig11_layers),
            out.png,
            out.pdf,
        )
    elif snakemake.rule == "figure_probe_methods":
        plot_methods(read("summary"), models, list(p.methods), acc, out.png, out.pdf)
    else:
        raise ValueError(f"figure_probes.py does not draw the figure of rule {snakemake.rule}")
    log.info("%s: models %s, %s", snakemake.rule, models, acc)
