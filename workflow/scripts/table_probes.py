# The positional probes' tables (paper sec. 3.2), one script for the four table rules: each reads
# the probe jobs' rows and writes one table.
import pandas as pd

from vlmloc.outputs import write_tsv
from vlmloc.tables.probes import (
    best_layer_table,
    best_llm_layers,
    layers_by_kind,
    line_breaks,
    method_table,
    with_accuracy,
)
from vlmloc.workflow.logs import logged


def read(kind):
    files = snakemake.input.get(kind, [])
    return (
        pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        if files
        else pd.DataFrame()
    )


with logged(snakemake) as log:
    p = snakemake.params
    summary, acc = read("summary"), p.accuracy
    if summary.empty:
        raise ValueError("no probe rows: probes.enabled is false or no run model is probed")
    if snakemake.rule == "table_probe_layers":
        # every token (kind "all"), and InternVL's thumbnail and tiles apart
        cells = read("cells")
        several = cells.groupby("model")["kind"].nunique()
        by_kind = layers_by_kind(
            cells[cells["model"].isin(several[several > 1].index)], summary, acc
        )
        by_kind = by_kind.assign(split="test")  # cells are of the test images
        table = pd.concat(
            [with_accuracy(summary, acc).assign(kind="all"), by_kind], ignore_index=True
        )
        table = table.rename(
            columns={
                "acc": "acc_position",
                "acc_lo": "acc_position_lo",
                "acc_hi": "acc_position_hi",
                "chance": "chance_position",
            }
        )
        table.insert(table.columns.get_loc("acc_position"), "accuracy", acc)
    elif snakemake.rule == "table_probe_best_layer":
        table = best_layer_table(summary, dict(p.paper_names), list(p.methods), acc)
        for _, r in table.iterrows():
            log.info(
                "%s %s: best LLM layer %d (chosen on %s; test %.3f, untrained %.3f); paper text %s, appendix %s",
                r["model"],
                r["method"],
                r["best_llm_layer"],
                r["best_layer_chosen_on"],
                r["acc_best_llm"],
                r["acc_untrained_best_llm"],
                r["paper_best_layer_text"],
                r["paper_best_layer_appendix"],
            )
            if r["max_shuffled_z"] > 4:  # a probe that beats chance on shuffled positions is a bug
                log.warning(
                    "%s %s: a probe trained on shuffled positions is %.1f SD above chance",
                    r["model"],
                    r["method"],
                    r["max_shuffled_z"],
                )
    elif snakemake.rule == "table_probe_methods":
        table = method_table(summary, read("timing"), acc)
    elif snakemake.rule == "table_probe_line_breaks":
        best = best_llm_layers(summary, p.figure_method, acc)
        sites = {m: ["projector", f"llm.{best[m]}"] for m in p.models}
        table = line_breaks(read("cells"), sites, p.figure_method, acc)
    else:
        raise ValueError(f"table_probes.py does not make the table of rule {snakemake.rule}")
    write_tsv(table, snakemake.output[0])
    log.info("%s: %d rows, %s, models %s", snakemake.rule, len(table), acc, list(p.models))
