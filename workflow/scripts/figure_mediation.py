import pandas as pd

from vlmloc.figures.head_figures import mediation_heatmaps, mediation_sparsity_figure, save
from vlmloc.workflow import logged

with logged(snakemake) as log:
    p = snakemake.params
    heads = {m: pd.read_parquet(f) for m, f in zip(p.models, snakemake.input, strict=True)}
    out = snakemake.output
    save(mediation_heatmaps(heads, dict(p.paper_names)), out.fig4, out.fig4_pdf)
    save(mediation_sparsity_figure(heads), out.sparsity, out.sparsity_pdf)
    log.info("Fig 4 and the MF sparsity figure for %d models", len(heads))
