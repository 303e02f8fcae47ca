from vlmloc.data.archives import extract
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    log.info("extracting %s (members under %s)", snakemake.input[0], snakemake.params.members)
    extract(snakemake.input[0], snakemake.output[0], members_under=tuple(snakemake.params.members))
