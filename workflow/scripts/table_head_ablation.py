import pandas as pd

from vlmloc.outputs import write_tsv
from vlmloc.tables.head_ablation import (
    head_ablation_auc,
    head_ablation_contrasts,
    head_ablation_table,
)
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    rows = {m: pd.read_parquet(f) for m, f in zip(p.models, snakemake.input, strict=True)}
    boot, names = dict(p.bootstrap), dict(p.paper_names)
    curves = head_ablation_table(rows, boot, names)
    auc = head_ablation_auc(curves, rows, boot)
    contrasts = head_ablation_contrasts(rows, boot, names)
    write_tsv(curves, snakemake.output.curves)
    write_tsv(auc, snakemake.output.auc)
    write_tsv(contrasts, snakemake.output.contrasts)
    for r in auc[auc["seed"] < 0].itertuples(index=False):
        log.info(
            "%s %s/%s %s: AUC %.3f [%.3f, %.3f] over %d seed(s)",
            r.model,
            r.ablation,
            r.positions,
            r.setting,
            r.auc,
            r.auc_lo,
            r.auc_hi,
            r.n_seeds,
        )
    for r in contrasts.itertuples(index=False):
        log.info(
            "%s %s/%s: AUC(%s) - AUC(%s) = %.3f [%.3f, %.3f], p = %.3g",
            r.model,
            r.ablation,
            r.positions,
            r.setting,
            r.versus,
            r.delta_auc,
            r.delta_lo,
            r.delta_hi,
            r.p,
        )
