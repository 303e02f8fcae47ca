"""Head ablation's variants on a committed toy, in one run: zero or mean ablation, after the image
or at every position, each with the curves, the answers out of format and the AUC differences.

    python scripts/head_ablation_variants.py --family internvl [--images 60] [--pairs 24]

Draws a held-out shapes set (``toy.evaluate.held_out_set``, the science tests' seed 7000), runs
the mediation on ``--pairs`` of its samples, then head ablation by that ranking on the others
(1, 2 and 4 of the 16 heads; localization-critical, lowest-|MF| and 3 random seeds), every
combination of ``--ablation`` and ``--positions``, and prints ``head_ablation_table`` and
``head_ablation_contrasts`` (docs/methods/mediation.md, "The head-ablation control"). No demo
run is needed; about 2 minutes per toy on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import torch

from vlmloc.data.shapes import ShapesSpec
from vlmloc.defaults import defaults
from vlmloc.experiments import ShardJob, get_experiment, run_shard
from vlmloc.experiments.head_ranking import head_scores
from vlmloc.models import load_adapter
from vlmloc.runner import Runner
from vlmloc.scoring import score_rows
from vlmloc.tables.head_ablation import (
    head_ablation_auc,
    head_ablation_contrasts,
    head_ablation_table,
)
from vlmloc.toy.evaluate import held_out_set

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = defaults("bootstrap")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=["llava", "internvl"], required=True)
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--ablation", nargs="+", default=["zero", "mean"])
    ap.add_argument("--positions", nargs="+", default=["post_image", "all"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = ShapesSpec()
    adapter = load_adapter(
        args.family, ROOT / "checkpoints" / f"toy_{args.family}", dtype="float32", device="cpu"
    )
    with tempfile.TemporaryDirectory() as tmp:
        samples, removed = held_out_set(Path(tmp) / "eval", spec, args.images, seed=7000)
        samples = samples.merge(removed, on="sample_id")

        def job(settings: dict) -> ShardJob:
            j = ShardJob(
                adapter,
                Runner(adapter, batch_size=64, progress=False),
                samples,
                spec.categories,
                settings,
                defaults("screening.max_new_tokens"),
                None,
                present=None,
                progress=False,
            )
            j.pool = samples
            return j

        pairs = {"n_pairs": args.pairs, "seed": 0}
        raw = run_shard(
            get_experiment("mediation"),
            job(pairs),  # the rest: the schema's defaults (Experiment.settings)
        )
        heads = head_scores(raw, 0.25, BOOTSTRAP)
        heads.to_parquet(Path(tmp) / "heads.parquet")
        j = job(
            {
                "settings": ["localization", "lowest", "random"],
                "proportions": [1 / 16, 2 / 16, 4 / 16],
                "random_seeds": [0, 1, 2],
                "positions": args.positions,
                "pool": "disjoint",
                "ablation": args.ablation,
                "mean_samples": 16,
                "pairs": pairs,
            }
        )
        j.upstream = {"mediation": str(Path(tmp) / "heads.parquet")}
        rows = score_rows(
            run_shard(get_experiment("head_ablation"), j), samples, args.family, spec.categories
        )
    rows = {args.family: rows}
    curves = head_ablation_table(rows, BOOTSTRAP, {})
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    cols = ["ablation", "positions", "setting", "seed", "n_heads", "accuracy", "acc_lo", "acc_hi"]
    cols += ["format_broken", "acc_well_formed", "n"]
    print(curves[cols].round(1).to_string(index=False))
    auc = head_ablation_auc(curves, rows, BOOTSTRAP)
    print(
        auc[auc["seed"] == -1].drop(columns=["model", "paper_name"]).round(3).to_string(index=False)
    )
    contrasts = head_ablation_contrasts(rows, BOOTSTRAP, {})
    print(contrasts.drop(columns=["model", "paper_name"]).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
