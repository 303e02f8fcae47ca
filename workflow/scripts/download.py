from pathlib import Path

from vlmloc.data.download import fetch
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    url, md5 = snakemake.params.url, snakemake.params.md5
    dest = Path(snakemake.output[0])
    log.info("downloading %s -> %s", url, dest)
    digest = fetch(
        url, dest, md5=md5, retries=snakemake.params.retries, timeout=snakemake.params.timeout
    )
    if md5 is None:
        # No published checksum: record it so the user can pin it in config (downloads.files).
        Path(str(dest) + ".md5").write_text(digest + "\n")
        log.warning(
            "no md5 configured for %s; recorded %s in %s.md5 (pin it in config)",
            dest.name,
            digest,
            dest,
        )
    log.info("ok, md5 %s", digest)
