import pandas as pd

from vlmloc.experiments.heads_summary import mediation_overlap, mediation_sparsity
from vlmloc.workflow import logged, write_tsv

with logged(snakemake) as log:
    p = snakemake.params
    heads = {m: pd.read_parquet(f) for m, f in zip(p.models, snakemake.input, strict=True)}
    names = dict(p.paper_names)
    out = snakemake.output
    write_tsv(pd.concat(heads.values(), ignore_index=True), out.heads)
    write_tsv(mediation_sparsity(heads, names), out.sparsity)
    overlap = mediation_overlap(heads, names)
    write_tsv(overlap, out.overlap)
    for r in overlap.itertuples(index=False):
        log.info(
            "%s: top-%d overlap %s (chance %.1f, paper %s)",
            r.model,
            r.k,
            r.shared,
            r.expected_chance,
            r.paper_shared,
        )
