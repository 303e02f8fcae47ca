import pandas as pd

from vlmloc.outputs import write_parquet, write_tsv
from vlmloc.tables.screening import (
    baseline_accuracy,
    counts_table,
    false_positive_rates,
    probing_subset,
)
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    models = snakemake.params.models
    samples = pd.read_parquet(snakemake.input.samples)
    kept = {m: pd.read_parquet(p) for m, p in zip(models, snakemake.input.kept, strict=True)}
    answers = {m: pd.read_parquet(p) for m, p in zip(models, snakemake.input.answers, strict=True)}
    subset = probing_subset(samples, kept)
    if subset.empty:
        log.warning(
            "the probing subset is EMPTY: of the %d samples that passed validation and the filters "
            "(tables/filter_counts.tsv), each model's hallucination filter kept %s (identified on "
            "the original image, not on the object-removed one), and no sample is kept by every "
            "model (tables/screening_counts.tsv); downstream outputs will be empty",
            len(samples),
            ", ".join(f"{m}: {int(k['kept'].sum())}" for m, k in kept.items()),
        )
    write_parquet(subset, snakemake.output.subset)
    with open(
        snakemake.output.ids, "w"
    ) as f:  # what the experiments depend on (compared by checksum)
        f.writelines(f"{i}\n" for i in sorted(subset["sample_id"]))
    write_tsv(counts_table(snakemake.params.kind, samples, kept, subset), snakemake.output.counts)
    write_tsv(
        baseline_accuracy(answers, subset, snakemake.params.paper_names), snakemake.output.accuracy
    )
    write_tsv(false_positive_rates(answers), snakemake.output.fpr)
    log.info(
        "probing subset: %d samples in %d images",
        len(subset),
        subset["image_id"].nunique() if len(subset) else 0,
    )
