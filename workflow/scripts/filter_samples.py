from vlmloc.data.coco import load_json
from vlmloc.data.filtering import FilterSettings, filter_samples
from vlmloc.data.paper import filter_counts_with_paper
from vlmloc.workflow import logged, write_parquet, write_tsv

with logged(snakemake) as log:
    coco = load_json(snakemake.input.annotations)
    samples, counts = filter_samples(
        coco, snakemake.params.image_root, FilterSettings(**snakemake.params.filter)
    )
    write_parquet(samples, snakemake.output.samples)
    write_tsv(filter_counts_with_paper(counts, snakemake.params.kind), snakemake.output.counts)
    log.info("kept %d samples in %d images", len(samples), samples["image_id"].nunique())
