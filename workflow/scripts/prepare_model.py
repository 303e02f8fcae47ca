from pathlib import Path

from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    src, out = snakemake.params.source, Path(snakemake.output[0])
    if "tiny" in src:
        from vlmloc.models.tiny import BUILDERS

        BUILDERS[src["family"]](out, seed=src["tiny"])
        log.info("built a tiny random-weight %s model in %s", src["family"], out)
    else:
        from huggingface_hub import snapshot_download

        log.info("downloading %s@%s -> %s", src["hub_id"], src["revision"], out)
        snapshot_download(repo_id=src["hub_id"], revision=src["revision"], local_dir=out)
