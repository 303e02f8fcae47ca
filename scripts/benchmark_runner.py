"""Speed of the batched runner against per-sample `generate`, in one run, on the demo's models.

    python scripts/benchmark_runner.py [--n 48] [--batch-size 16] [--device cpu]

The screening workload: shapes images on disk, each asked the three prompts (localization,
list, binary). The naive way opens, preprocesses and generates one query at a time; the runner
batches queries and preprocesses each image once. Prints the timings, the ratios, and whether
the answers agree; then the same with each image's prefix (its visual tokens) run once for its
three prompts (``Runner.generate_shared``, what screening and token ablation use). Uses the tiny
demo models (or --model-dir with one --family).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vlmloc.data.shapes import ShapesSpec, render_scene
from vlmloc.models import load_adapter
from vlmloc.models.tiny import BUILDERS
from vlmloc.runner import Runner
from vlmloc.tasks import task_prompt

TOKENS = {"localization": 24, "list": 24, "binary": 4}


def naive(adapter, images, texts, max_new_tokens):
    out = []
    for path, t in zip(images, texts, strict=True):
        enc = adapter.encode([Image.open(path).convert("RGB")], [t])
        inputs = {k: v.to(adapter.device) for k, v in enc.inputs.items()}
        with torch.inference_mode():
            ids = adapter.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        out.append(ids[0, inputs["input_ids"].shape[1] :])
    return out


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--family", action="append", choices=sorted(BUILDERS))
    ap.add_argument("--model-dir", help="a checkpoint folder instead of the tiny demo model")
    args = ap.parse_args()
    families = args.family or sorted(BUILDERS)

    rng = np.random.default_rng(0)
    spec = ShapesSpec()
    scenes = [render_scene(rng, spec) for _ in range(args.n)]
    with tempfile.TemporaryDirectory() as tmp:
        images = []
        for k, (img, _, _) in enumerate(scenes):
            images.append(str(Path(tmp) / f"{k}.png"))
            Image.fromarray(img).save(images[-1])
        texts = {
            t: [task_prompt(t, objs[0]["category"], spec.categories) for _, _, objs in scenes]
            for t in TOKENS
        }
        for family in families:
            path = args.model_dir or BUILDERS[family](Path(tmp) / family, seed=0)
            adapter = load_adapter(family, path, dtype=args.dtype, device=args.device)
            runner = Runner(adapter, batch_size=args.batch_size, progress=False)
            naive(adapter, images[:2], texts["binary"][:2], 2)  # warm-up
            t0 = time.perf_counter()
            ref = [
                runner.decode(ids)
                for t, n in TOKENS.items()
                for ids in naive(adapter, images, texts[t], n)
            ]
            t_naive = time.perf_counter() - t0
            t0 = time.perf_counter()
            got = [a for t, n in TOKENS.items() for a in runner.generate(images, texts[t], n)]
            t_batched = time.perf_counter() - t0
            t0 = time.perf_counter()
            shared = runner.generate_shared(
                images, [texts[t] for t in TOKENS], list(TOKENS.values())
            )
            t_shared = time.perf_counter() - t0
            shared = [a for answers in shared for a in answers]
            agree = np.mean([a == b for a, b in zip(ref, got, strict=True)])
            agree_shared = np.mean([a == b for a, b in zip(ref, shared, strict=True)])
            print(
                f"{family:9s} {len(got)} queries: per-sample generate {t_naive:6.2f}s | batched runner "
                f"(bs={args.batch_size}) {t_batched:6.2f}s x{t_naive / t_batched:4.1f} (same answers {agree:.0%}) | "
                f"+ shared image prefix {t_shared:6.2f}s x{t_naive / t_shared:4.1f} (same answers {agree_shared:.0%})"
            )


if __name__ == "__main__":
    main()
