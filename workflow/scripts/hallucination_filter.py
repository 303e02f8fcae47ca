import pandas as pd

from vlmloc.outputs import write_parquet
from vlmloc.tables.screening import hallucination_filter
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    kept = hallucination_filter(
        pd.read_parquet(snakemake.input[0]), query=snakemake.params.identify_with
    )
    write_parquet(kept, snakemake.output[0])
    log.info(
        "kept %d of %d samples (identified with the %s query); excluded: %s",
        int(kept["kept"].sum()),
        len(kept),
        snakemake.params.identify_with,
        kept.loc[~kept["kept"], "reason"].value_counts().to_dict(),
    )
