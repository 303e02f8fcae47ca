# The validation pass (every annotation, every image holding a candidate sample decoded once),
# then the appendix 6.1 filters. A bad sample becomes a row of the rejected table; data that
# cannot be trusted at all (a duplicate id, no sample left) stops the run here, before any model.
from vlmloc.data.coco import load_json
from vlmloc.data.filtering import FilterSettings, filter_samples
from vlmloc.data.paper import filter_counts_with_paper
from vlmloc.data.validation import check_samples, validate_dataset
from vlmloc.outputs import write_parquet, write_tsv
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    source = str(snakemake.input.annotations)
    coco = load_json(source)
    validation = validate_dataset(coco, snakemake.params.image_root, source)
    log.info(
        "validated %d annotations and decoded %d images; rejected %d samples %s",
        len(coco["annotations"]),
        validation.images_checked,
        len(validation.rejected),
        validation.counts(),
    )
    for conversion, n in sorted(validation.conversions.items()):
        log.info("%d images converted: %s", n, conversion)
    for r in validation.rejected.itertuples():
        log.warning("rejected %s (%s): %s", r.sample_id, r.check, r.reason)
    samples, counts = filter_samples(
        coco,
        snakemake.params.image_root,
        FilterSettings(**snakemake.params.filter),
        rejected=validation.rejected["ann_id"],
    )
    check_samples(samples, counts, validation, snakemake.wildcards.dataset)
    write_tsv(validation.rejected, snakemake.output.rejected)
    write_parquet(samples, snakemake.output.samples)
    write_tsv(filter_counts_with_paper(counts, snakemake.params.kind), snakemake.output.counts)
    log.info("kept %d samples in %d images", len(samples), samples["image_id"].nunique())
