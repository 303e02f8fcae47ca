from pathlib import Path

from vlmloc.figures.toy_figures import training_curves
from vlmloc.toy.cli import run
from vlmloc.toy.train import ToyConfig
from vlmloc.workflow.logs import logged

with logged(snakemake) as log:
    cfg = ToyConfig(**snakemake.params.config)
    out = Path(snakemake.output[0])
    history = run(cfg, out, progress=False)
    aux = ", ".join({"xy": "cell"}.get(t, t) for t in cfg.aux_targets)
    training_curves(history, out / "training_curves.png", title=snakemake.wildcards.toy, aux=aux)
    log.info("trained %s: %s", snakemake.wildcards.toy, history.iloc[-1].to_dict())
