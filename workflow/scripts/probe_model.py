# Rule probe_model: the positional probes of every site of one model (and of its re-initialised
# twin, the untrained control): summary, per-cell and timing rows.
import pandas as pd

from vlmloc.outputs import write_parquet
from vlmloc.probes import ProbeSettings, fit_and_score, probe_images
from vlmloc.workflow.jobs import load_job_adapter
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    p = snakemake.params
    adapter = load_job_adapter(p.model, p.device, snakemake.threads)
    log.info("%s on %s (%d threads)", snakemake.wildcards.model, adapter.device, snakemake.threads)

    s = dict(p.settings)
    train, test = probe_images(
        s["train_images"], s["test_images"], s["n_train"], s["n_test"], s["seed"], p.shapes_spec
    )
    settings = ProbeSettings.from_config(s, p.batch_size)
    log.info(
        "probes: %d train (%.0f%% held out for validation), %d test images (%s / %s), methods %s, %d epochs, "
        "views %s, untrained control %s",
        len(train),
        100 * settings.validation_fraction,
        len(test),
        s["train_images"],
        s["test_images"],
        settings.methods,
        settings.epochs,
        settings.views,
        (settings.untrained_methods or settings.methods) if settings.untrained_control else "off",
    )
    run = fit_and_score(adapter, train, test, settings)
    for name, rows in (("summary", run.summary), ("cells", run.cells), ("timing", run.timing)):
        write_parquet(
            pd.DataFrame(rows).assign(model=snakemake.wildcards.model), snakemake.output[name]
        )
    for t in run.timing:
        log.info(
            "%s (%s model): %d train forwards, train %.1f s (forward %.1f s, probes %.1f s), validation %.1f s, "
            "test %.1f s",
            t["method"],
            "trained" if t["variant"] == "true" else t["variant"],
            t["train_forwards"],
            t["train_s"],
            t["forward_s"],
            t["probe_s"],
            t["validation_forward_s"],
            t["test_forward_s"],
        )
