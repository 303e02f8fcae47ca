import pandas as pd

from vlmloc.outputs import write_tsv
from vlmloc.tables.mediation import mediation_overlap, mediation_sparsity, mediation_statistics
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    inp = snakemake.input
    heads = {m: pd.read_parquet(f) for m, f in zip(p.models, inp.heads, strict=True)}
    pairs = {m: pd.read_parquet(f) for m, f in zip(p.models, inp.pairs, strict=True)}
    names = dict(p.paper_names)
    out = snakemake.output
    write_tsv(pd.concat(heads.values(), ignore_index=True), out.heads)
    sparsity = mediation_sparsity(heads, pairs, names, dict(p.bootstrap))
    write_tsv(sparsity, out.sparsity)
    for r in sparsity.itertuples(index=False):
        log.info(
            "%s %s %s: top 3 carry %.2f [%.2f, %.2f] of |MF|, null %.2f, p = %.3g",
            r.model,
            r.task,
            r.statistic,
            r.share_top3,
            r.share_top3_lo,
            r.share_top3_hi,
            r.share_top3_null,
            r.share_top3_p,
        )
    overlap = mediation_overlap(heads, names)
    write_tsv(overlap, out.overlap)
    for r in overlap[overlap["statistic"] == "mean"].itertuples(index=False):
        log.info(
            "%s: top-%d overlap %s (chance %.1f, P(>=) %.3g; paper %s)",
            r.model,
            r.k,
            r.shared,
            r.expected_chance,
            r.p_more,
            r.paper_shared,
        )
    write_tsv(mediation_statistics(heads, names, p.rank_by), out.statistics)
