"""Speed of the toy models' answer-stage training step with the shared image prefix against
whole sequences, in one run, on a model built from the workflow's toy_training config.

    python scripts/benchmark_toy_training.py [--toy toy_llava] [--steps 6] [--threads 1]

Both ways get the same batches; the step is forward + backward, with the vision tower frozen or
trained as the toy's stage 2 has it (``vision_lr_scale``).
Prints the seconds per step of each, the ratio, and the largest loss difference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

from vlmloc.data.shapes import ShapesSpec
from vlmloc.toy.data import make_pool
from vlmloc.toy.train import Batcher, ToyConfig, answer_loss, build_untrained


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--toy", default="toy_llava")
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = ToyConfig(**yaml.safe_load(Path(args.config).read_text())["toy_training"][args.toy])
    spec = ShapesSpec(colours=tuple(cfg.colours), shapes=tuple(cfg.shapes))
    with tempfile.TemporaryDirectory() as tmp:
        adapter = build_untrained(cfg, Path(tmp) / "model")
    if cfg.vision_lr_scale == 0:  # as in stage 2
        for p in adapter.vision_tower.parameters():
            p.requires_grad_(False)
    pool = make_pool(adapter, spec, 4 * cfg.batch_images, cfg.seed, progress=False)
    batcher = Batcher(adapter, pool, spec.categories, cfg.seed)
    batches = [
        batcher(cfg.batch_images, cfg.questions_per_image, cfg.localization_questions)
        for _ in range(args.steps + 1)
    ]
    seconds, losses = {}, {}
    for share in (True, False):
        times, values = [], []
        for b in batches:  # the first step warms up
            t0 = time.perf_counter()
            loss = answer_loss(
                adapter, b, adapter.image_features(b.pixel_values), share_prefix=share
            )
            loss.backward()
            times.append(time.perf_counter() - t0)
            values.append(loss.item())
        seconds[share], losses[share] = sum(times[1:]) / args.steps, values
    n_seq = len(batches[0].image_of)
    tower = "frozen" if cfg.vision_lr_scale == 0 else "trained"
    print(
        f"{args.toy}: {cfg.batch_images} images x {n_seq // cfg.batch_images} questions, {pool[0].n_tokens}+ visual tokens, "
        f"tower {tower}, {args.threads} thread(s)"
    )
    print(f"whole sequences     : {seconds[False]:.3f} s/step")
    print(f"shared image prefix : {seconds[True]:.3f} s/step")
    print(f"speed-up            : {seconds[False] / seconds[True]:.2f}x")
    print(
        f"max |loss difference|: {max(abs(a - b) for a, b in zip(losses[True], losses[False], strict=True)):.2e}"
    )


if __name__ == "__main__":
    main()
