"""python -m vlmloc.toy.cli --family llava --out checkpoints/toy_llava [--steps N ...]"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile

from ..data.shapes import ShapesSpec
from ..models.tiny import BUILDERS
from .evaluate import evaluate, held_out_set, summarize
from .train import ToyConfig, train


def run(
    cfg: ToyConfig, out: str, eval_images: int = 60, eval_seed: int = 1000, progress: bool = True
):
    spec = ShapesSpec(colours=tuple(cfg.colours), shapes=tuple(cfg.shapes))
    with tempfile.TemporaryDirectory() as tmp:
        samples, removed = held_out_set(tmp, spec, eval_images, eval_seed)
        quick = samples.sample(n=min(cfg.eval_samples, len(samples)), random_state=0)

        def held_out(adapter):
            ans = evaluate(adapter, quick, removed, spec.categories, conditions=("original",))
            s = summarize(ans)
            return {k: s[k] for k in ("loc_score", "success@0.5", "cls_list")}

        return train(cfg, out, held_out, progress=progress)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True, choices=sorted(BUILDERS))
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default="{}", help="JSON overrides of ToyConfig fields")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    cfg = ToyConfig(family=args.family, **json.loads(args.config))
    run(cfg, args.out)


if __name__ == "__main__":
    main()
