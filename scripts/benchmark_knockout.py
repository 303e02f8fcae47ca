"""Speed of the attention-knockout experiment against full recomputation, in one run.

    python scripts/benchmark_knockout.py [--n 16] [--batch-size 16] [--layers 4] [--device cpu]

A tiny random-weight LLaVA with the REAL token count (336 px, patch 14: 24 x 24 = 576 visual
tokens) and ``--layers`` decoder layers, on shapes images, through the knockout experiment's
conditions (windows of 2 and 1 layers and all layers, object mask and mask +1, the random
control, the baseline) and both tasks. The naive way (``run_conditions_naive``) recomputes each
sample's whole prompt for every condition and task; the experiment layer runs each batch's image
prefix once and continues every condition's questions from its KV cache. Prints the time per
sample and condition of each, the ratio, and whether the answers agree.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from benchmark_token_ablation import MAX_NEW, compare, samples_on_disk  # noqa: E402

from vlmloc.data.shapes import ShapesSpec  # noqa: E402
from vlmloc.experiments import get_experiment  # noqa: E402
from vlmloc.experiments.base import ShardJob  # noqa: E402
from vlmloc.models import load_adapter  # noqa: E402
from vlmloc.models.tiny import SMALL_TEXT, build_tiny_llava  # noqa: E402
from vlmloc.runner import Runner  # noqa: E402

SETTINGS = {
    "fig3_window": 2,
    "fig12_windows": [2, 1],
    "stride": None,
    "all_layers": True,
    "paddings": [0, 1],
    "random_control": True,
    "random_seeds": [0],
    "random_outside_padding": 1,
    "translated_control": False,
}


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    args = ap.parse_args()
    spec = ShapesSpec()
    with tempfile.TemporaryDirectory() as tmp:
        samples = samples_on_disk(Path(tmp), args.n, spec)
        path = build_tiny_llava(
            Path(tmp) / "llava",
            seed=0,
            image_size=336,
            patch_size=14,
            text={**SMALL_TEXT, "num_hidden_layers": args.layers},
        )
        adapter = load_adapter(
            "llava", path, dtype="float32", device=args.device, attn_implementation=args.attn
        )
        job = ShardJob(
            adapter,
            Runner(adapter, batch_size=args.batch_size, progress=False),
            samples,
            spec.categories,
            SETTINGS,
            MAX_NEW,
            progress=False,
        )
        conditions = list(get_experiment("attention_knockout").conditions(job))
        print(
            f"tiny LLaVA, 576 visual tokens, {args.layers} layers ({args.attn}): {args.n} samples x {len(conditions)} "
            f"conditions x 2 tasks ({torch.get_num_threads()} threads, {args.device})"
        )
        compare(
            conditions,
            job,
            "full recomputation per sample, task and condition",
            f"one prefix run, every condition from its cache (bs={args.batch_size})",
        )


if __name__ == "__main__":
    main()
