"""How precise the visual tokens are after the vision stage alone: trains stage 1 of a toy's
recipe (config.yaml's toy_training) and reports, on unseen scenes, the auxiliary head's mean
absolute box error on object tokens (view frame, 0..1) and its per-token category accuracy.

    python scripts/probe_vision_stage.py [--toy toy_llava] [--steps 3500] [--every 500]

Compare the box error with scripts/evaluate_toy.py's median error of the answers on the asked
object: what the answer stage loses on top of what the tower gives it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import yaml

from vlmloc.data.shapes import ShapesSpec
from vlmloc.toy.data import make_pool
from vlmloc.toy.train import Batcher, ToyConfig, aux_head, aux_outputs, build_untrained, vision_step


@torch.no_grad()
def probe(adapter, head, batcher, scenes) -> dict:
    pixel_values, targets = batcher.images(scenes)
    logits, _, box = aux_outputs(head(adapter.image_features(pixel_values)))
    on_object = ~torch.isnan(targets["box"][:, 0])
    return {
        "box_error": (box[on_object] - targets["box"][on_object].clamp(0, 1)).abs().mean().item(),
        "category_accuracy": (logits.argmax(1) == targets["category"]).float().mean().item(),
    }


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--toy", default="toy_llava")
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--steps", type=int, help="vision steps (default: the recipe's)")
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument(
        "--unseen", type=int, default=300, help="scenes of another pool seed, never trained on"
    )
    ap.add_argument("--unseen-seed", type=int, default=999)
    args = ap.parse_args()
    recipe = yaml.safe_load(Path(args.config).read_text())["toy_training"][args.toy]
    cfg = ToyConfig(**{**recipe, **({"vision_steps": args.steps} if args.steps else {})})
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    spec = ShapesSpec(colours=tuple(cfg.colours), shapes=tuple(cfg.shapes))
    with tempfile.TemporaryDirectory() as tmp:
        adapter = build_untrained(cfg, Path(tmp) / "model")
    head = aux_head(adapter, len(spec.categories))
    pool = make_pool(adapter, spec, cfg.pool_images, cfg.seed)
    if args.unseen_seed == cfg.seed:
        raise SystemExit(
            "--unseen-seed must differ from the recipe's seed (those are the training scenes)"
        )
    unseen = make_pool(adapter, spec, args.unseen, args.unseen_seed, progress=False)
    batcher = Batcher(adapter, pool, spec.categories, cfg.seed + 1)
    params = list(adapter.model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.vision_lr, weight_decay=cfg.weight_decay)
    t0 = time.perf_counter()
    for step in range(cfg.vision_steps):  # stage 1 of vlmloc.toy.train.train
        loss = vision_step(cfg, adapter, head, batcher, opt, params, step)
        if (step + 1) % args.every == 0 or step + 1 == cfg.vision_steps:
            row = {
                "step": step + 1,
                "seconds": round(time.perf_counter() - t0),
                "loss": round(loss, 4),
            }
            print(json.dumps({**row, **probe(adapter, head, batcher, unseen)}), flush=True)


if __name__ == "__main__":
    main()
