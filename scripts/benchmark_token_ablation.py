"""Speed of the token-ablation experiment (or of containerization, token shuffling, the view
ablation) against the naive way, in one run.

    python scripts/benchmark_token_ablation.py [--n 16] [--batch-size 16] [--family llava] [--device cpu]
                                               [--experiment token_ablation|containerization|token_shuffle|view_ablation]

A tiny random-weight model with the REAL token count (LLaVA: 336 px, patch 14 -> 24 x 24 = 576
visual tokens; InternVL: 448 px tiles, patch 14 -> 256 tokens per view, up to 6 tiles + the
thumbnail), on shapes images, through four of Table 1's conditions (baseline, object tokens,
object +1, 16% random), both tasks. The naive way (``experiments.reference.run_conditions_naive``)
runs one ``generate`` per sample and task; the experiment layer (``run_conditions``) batches the
samples and runs each image's prefix (system prompt + visual tokens) once for both tasks.
Prints the time per sample and condition of each, the ratio, and whether the answers agree.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from vlmloc.data.coco import encode_mask
from vlmloc.data.shapes import ShapesSpec, render_scene
from vlmloc.experiments import get_experiment
from vlmloc.experiments.base import (
    Condition,
    ShardJob,
    run_conditions,
    share_count,
)
from vlmloc.experiments.reference import run_conditions_naive
from vlmloc.experiments.token_ablation import ablation, object_indices, random_indices_like
from vlmloc.interventions import mean_visual_embedding
from vlmloc.models import load_adapter
from vlmloc.models.tiny import BUILDERS
from vlmloc.runner import Runner

REAL_SIZE = {
    "llava": {"image_size": 336, "patch_size": 14},
    "internvl": {"image_size": 448, "patch_size": 14},
}
# the other experiments on the same layer: their first four conditions, with these settings
OTHER = {
    "containerization": {
        "paddings": [1, 2],
        "seeds": [0, 1],
        "scales": [0, 1, 2],
        "scale_grid": "global",
        "tasks": ["localization"],
    },
    "token_shuffle": {"modes": ["full", "object"], "seeds": [0, 1]},
    "view_ablation": {"views": ["global", "local"], "paddings": [0, 1], "multi_view_only": False},
}
MAX_NEW = {"localization": 24, "list": 24}


def samples_on_disk(root: Path, n: int, spec: ShapesSpec) -> pd.DataFrame:
    rng, rows = np.random.default_rng(0), []
    for k in range(n):
        image, _, objects = render_scene(rng, spec)
        path = root / f"{k}.png"
        Image.fromarray(image).save(path)
        mask = objects[0]["mask"]
        ys, xs = np.nonzero(mask)
        rows.append(
            {
                "sample_id": f"b{k}",
                "image_id": k,
                "category": objects[0]["category"],
                "image_path": str(path),
                "width": image.shape[1],
                "height": image.shape[0],
                "bbox_x": float(xs.min()),
                "bbox_y": float(ys.min()),
                "bbox_w": float(xs.max() + 1 - xs.min()),
                "bbox_h": float(ys.max() + 1 - ys.min()),
                "mask_rle": encode_mask(mask)["counts"],
            }
        )
    return pd.DataFrame(rows)


def compare(conditions, job: ShardJob, naive_label: str, fast_label: str) -> None:
    """Time the naive reference and the experiment layer on the same conditions; print both per
    sample and condition, the ratio, and the share of identical answers."""
    warm = Condition(
        "warm-up", {}, tasks=conditions[0].tasks
    )  # the conditions' per-sample lists fit the whole job only
    run_conditions("warm-up", [warm], ShardJob(**{**job.__dict__, "samples": job.samples.head(2)}))
    t0 = time.perf_counter()
    naive = run_conditions_naive("bench", conditions, job)
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = run_conditions("bench", conditions, job)
    t_fast = time.perf_counter() - t0
    key = ["condition", "task", "sample_id"]
    same = (
        naive.sort_values(key)["answer"].to_numpy() == fast.sort_values(key)["answer"].to_numpy()
    ).mean()
    per = len(job.samples) * len(conditions)
    print(f"  {naive_label}: {t_naive / per * 1000:8.1f} ms per sample and condition")
    print(
        f"  {fast_label}: {t_fast / per * 1000:8.1f} ms per sample and condition  ->  x{t_naive / t_fast:.1f}, "
        f"same answers {same:.0%}"
    )


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--family", action="append", choices=sorted(BUILDERS))
    ap.add_argument("--experiment", default="token_ablation", choices=["token_ablation", *OTHER])
    args = ap.parse_args()
    spec = ShapesSpec()
    with tempfile.TemporaryDirectory() as tmp:
        samples = samples_on_disk(Path(tmp), args.n, spec)
        for family in args.family or ["llava"]:
            path = BUILDERS[family](Path(tmp) / family, seed=0, **REAL_SIZE[family])
            adapter = load_adapter(family, path, dtype=args.dtype, device=args.device)
            mean = mean_visual_embedding(adapter, list(samples["image_path"][:4]))
            job = ShardJob(
                adapter,
                Runner(adapter, batch_size=args.batch_size, progress=False),
                samples,
                spec.categories,
                {},
                MAX_NEW,
                mean,
                progress=False,
            )
            n_tokens = [lay.n_tokens for lay in job.layouts()]
            if args.experiment in OTHER:
                job.settings = OTHER[args.experiment]
                conditions = list(get_experiment(args.experiment).conditions(job))[:4]
                print(
                    f"{family}, {args.experiment}: {int(np.mean(n_tokens))} visual tokens per image, {args.n} samples x "
                    f"{len(conditions)} conditions ({', '.join(c.name for c in conditions)})"
                )
                compare(
                    conditions,
                    job,
                    "naive per-sample, per-task generate",
                    f"experiment layer (bs={args.batch_size})",
                )
                continue
            conditions = [
                Condition("baseline", {"strategy": "baseline"}),
                ablation(
                    "object+0", {"strategy": "object"}, object_indices(adapter, samples, 0), job
                ),
                ablation(
                    "object+1", {"strategy": "object"}, object_indices(adapter, samples, 1), job
                ),
                ablation(
                    "random_k16",
                    {"strategy": "random"},
                    random_indices_like(
                        adapter, samples, [share_count(n, 16) for n in n_tokens], 0
                    ),
                    job,
                ),
            ]
            print(
                f"{family}: {int(np.mean(n_tokens))} visual tokens per image, {args.n} samples x {len(conditions)} "
                f"conditions x 2 tasks ({torch.get_num_threads()} threads, {args.device})"
            )
            compare(
                conditions,
                job,
                "naive per-sample, per-task generate",
                f"experiment layer (bs={args.batch_size}, shared prefix)",
            )


if __name__ == "__main__":
    main()
