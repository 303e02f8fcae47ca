# Rules figure_token_grid (appendix Fig. 7) and figure_token_grid_ig (integrated gradients on the
# token grid): the samples of vlmloc.experiments.token_grid, the model's layout from its config
# (no weights loaded), the importances from the token-ablation rows. No model is run.
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

from vlmloc.data.filtering import sample_mask
from vlmloc.data.samples import read_samples
from vlmloc.experiments.token_grid import grid_examples, ig_importances
from vlmloc.figures.token_grid_figures import GridExample, plot_fig7, plot_ig_grid
from vlmloc.models import geometry_adapter
from vlmloc.workflow.logs import logged


def examples(samples, adapter):
    return [
        GridExample(
            r["sample_id"],
            f"{r['size_bucket']}: mask {100 * r['area_fraction']:.1f}% of the image",
            np.asarray(Image.open(r["image_path"]).convert("RGB")),
            sample_mask(r),
            adapter.layout(int(r["width"]), int(r["height"])),
        )
        for r in grid_examples(samples).to_dict("records")
    ]


with logged(snakemake) as log:
    p, out, model = snakemake.params, snakemake.output, snakemake.wildcards.model
    adapter = geometry_adapter(p.model)
    shown = examples(read_samples(snakemake.input.samples, snakemake.input.subset), adapter)
    log.info("%s: samples %s", model, [e.sample_id for e in shown])
    if snakemake.rule == "figure_token_grid":
        _, cells = plot_fig7(model, shown, p.paddings, out.png, out.pdf)
        for (sid, pad), idx in sorted(cells.items()):
            log.info("%s padding %+d: %d tokens", sid, pad, len(idx))
    else:
        from vlmloc.experiments.token_ablation import top_indices

        task = snakemake.wildcards.task
        importances = {}
        if shown:  # an empty probing subset has rows without any IG column
            names = pq.read_schema(snakemake.input.rows).names
            wanted = ["sample_id", "task", "strategy", "ig_importance"]
            rows = pd.read_parquet(snakemake.input.rows, columns=[c for c in wanted if c in names])
            importances = ig_importances(rows[rows["strategy"] == "ig"], task)
        _, drawn = plot_ig_grid(model, task, shown, importances, top_indices, out.png, out.pdf)
        for sid, d in drawn.items():
            log.info(
                "%s: k = %d object tokens, %d of the top-k inside the object",
                sid,
                d["k"],
                int(np.isin(d["top"], d["object"]).sum()),
            )
