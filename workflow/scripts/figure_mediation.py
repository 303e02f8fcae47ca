import pandas as pd

from vlmloc.figures.head_figures import mediation_heatmaps, mediation_sparsity_figure, save
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    inp = snakemake.input
    heads = {m: pd.read_parquet(f) for m, f in zip(p.models, inp.heads, strict=True)}
    pairs = {m: pd.read_parquet(f) for m, f in zip(p.models, inp.pairs, strict=True)}
    sparsity = pd.read_csv(inp.sparsity, sep="\t")
    out = snakemake.output
    save(mediation_heatmaps(heads, dict(p.paper_names)), out.fig4, out.fig4_pdf)
    save(
        mediation_sparsity_figure(heads, pairs, sparsity, dict(p.bootstrap)),
        out.sparsity,
        out.sparsity_pdf,
    )
    log.info("Fig 4 and the MF sparsity figure for %d models", len(heads))
