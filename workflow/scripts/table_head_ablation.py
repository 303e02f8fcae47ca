import pandas as pd

from vlmloc.experiments.heads_summary import head_ablation_auc, head_ablation_table
from vlmloc.workflow import logged, write_tsv

with logged(snakemake) as log:
    p = snakemake.params
    rows = {m: pd.read_parquet(f) for m, f in zip(p.models, snakemake.input, strict=True)}
    curves = head_ablation_table(rows, dict(p.bootstrap), dict(p.paper_names))
    auc = head_ablation_auc(curves)
    write_tsv(curves, snakemake.output.curves)
    write_tsv(auc, snakemake.output.auc)
    for r in auc[auc["n_seeds"] > 1].itertuples(index=False):
        log.info("%s random: AUC %.3f +- %.3f over %d seeds", r.model, r.auc, r.auc_std, r.n_seeds)
    for r in auc[(auc["n_seeds"] == 1) & (auc["setting"] != "random")].itertuples(index=False):
        log.info("%s %s: AUC %.3f", r.model, r.setting, r.auc)
