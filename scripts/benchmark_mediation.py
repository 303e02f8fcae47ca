"""Speed of per-head mediation (``mediate_pair``) against the plain reference (one full forward
per head, ``mediate_pair_reference``), from one run, on tiny random-weight models with the real
token geometry:

- LLaVA: 336 px, patch 14 -> 24 x 24 = 576 visual tokens, 8 layers x 8 heads by default;
- InternVL (GQA, half as many key-value heads): 448 px tiles, patch 14 -> 256 tokens per view,
  a wide image -> 2 tiles + thumbnail = 768 visual tokens.

    python scripts/benchmark_mediation.py [--pairs 2] [--family llava] [--hidden 256] [--layers 8]
                                          [--heads 8] [--device cpu] [--dtype float32]

Prints per family: seconds per pair of each path, the ratio, the largest |MF| difference
between them, and the fast path's floor fraction: the FLOPs it cannot skip (2 x parameters x
tokens processed, the vision tower twice per pair, attention's quadratic term) over wall time x
this machine's matrix-multiply rate, measured here at the model's width and dtype.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vlmloc.experiments.mediation import mediate_pair, pair_sequence
from vlmloc.experiments.reference import mediate_pair_reference
from vlmloc.flops import DecoderDims, forward_flops
from vlmloc.models import load_adapter
from vlmloc.models.tiny import BUILDERS
from vlmloc.tasks import task_prompt

GEOMETRY = {
    "llava": {"image_size": 336, "patch_size": 14, "size": (640, 480)},
    "internvl": {"image_size": 448, "patch_size": 14, "size": (900, 450), "max_tiles": 2},
}
ROW = {"category": "red circle"}


def matmul_rate(
    n: int, k: int, m: int, dtype: torch.dtype, device: str, seconds: float = 1.0
) -> float:
    """FLOP/s of (n x k) @ (k x m) products on this machine."""
    a, b = (
        torch.randn(n, k, dtype=dtype, device=device),
        torch.randn(k, m, dtype=dtype, device=device),
    )
    a @ b
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        done += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n * k * m * done / (time.perf_counter() - t0)


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def necessary_flops(adapter, layout, items, n_heads: int) -> float:
    """The fast path's irreducible work for one pair: each image's vision tower once, each image
    prefix once (source, base), each task's suffix once per run (source, base, one per head),
    counted by ``vlmloc.flops.forward_flops`` (causal attention, kept logits)."""
    dims = DecoderDims.of(adapter.language_model, adapter.model.config.text_config)
    vision = params(adapter.vision_tower) + params(adapter.projector)
    patches = (adapter.vision_patch_grid**2 + adapter.vision_prefix_tokens) * len(layout.views)
    seqs = [pair_sequence(adapter, layout, text, answer) for text, answer in items]
    flops = 2 * 2 * vision * patches + 2 * forward_flops(dims, seqs[0].prefix)
    for seq in seqs:
        suffix = len(seq.ids) - seq.prefix
        flops += (2 + n_heads) * forward_flops(
            dims, suffix, past=seq.prefix, logits=len(seq.answer) + 1
        )
    return flops


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--family", action="append", choices=sorted(BUILDERS))
    ap.add_argument("--hidden", type=int, default=256, help="LLM width")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument(
        "--heads",
        type=int,
        default=8,
        help="query heads per layer (InternVL: half as many KV heads)",
    )
    ap.add_argument("--heads-per-batch", type=int, default=64)
    ap.add_argument("--positions", default="post_image")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    text = {
        "hidden_size": args.hidden,
        "intermediate_size": 4 * args.hidden,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
    }
    vision = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.family or sorted(BUILDERS):
            g = dict(GEOMETRY[family])
            size = g.pop("size")
            path = BUILDERS[family](Path(tmp) / family, seed=0, text=text, vision=vision, **g)
            a = load_adapter(family, path, dtype=args.dtype, device=args.device)
            layout = a.layout(*size)
            row = {
                **ROW,
                "bbox_x": 100,
                "bbox_y": 80,
                "bbox_w": 200,
                "bbox_h": 150,
                "width": size[0],
                "height": size[1],
            }
            items = [
                (task_prompt(t, ROW["category"], []), a.answer_tokens(a.gold_answer(t, row)))
                for t in ("localization", "binary")
            ]
            images = [
                [
                    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
                    for _ in range(2)
                ]
                for _ in range(args.pairs)
            ]
            pixels = [[a.pixel_values(im) for im in pair] for pair in images]
            mediate_pair(
                a, *pixels[0], layout, items, args.positions, args.heads_per_batch
            )  # warm-up
            t0 = time.perf_counter()
            fast = [
                mediate_pair(a, s, b, layout, items, args.positions, args.heads_per_batch)
                for s, b in pixels
            ]
            t_fast = (time.perf_counter() - t0) / args.pairs
            t0 = time.perf_counter()
            ref = [
                mediate_pair_reference(a, s, b, layout, items, args.positions) for s, b in pixels
            ]
            t_ref = (time.perf_counter() - t0) / args.pairs
            rate = matmul_rate(
                600, args.hidden, 4 * args.hidden, dtype, args.device
            )  # just before: a shared machine varies
            diff = max(
                np.abs(f["patched"] - r["patched"]).max()
                for fp, rp in zip(fast, ref, strict=True)
                for f, r in zip(fp, rp, strict=True)
            )
            n_heads = a.num_layers * a.num_heads
            floor = necessary_flops(a, layout, items, n_heads) / (t_fast * rate)
            print(
                f"{family}: {layout.n_tokens} visual tokens, {a.num_layers} x {a.num_heads} heads "
                f"({a.num_kv_heads} kv), {args.pairs} pairs x 2 tasks"
            )
            print(
                f"  matrix-multiply rate {rate / 1e9:.1f} GFLOP/s ({args.dtype}, 600 x {args.hidden} @ {args.hidden} x {4 * args.hidden})"
            )
            print(
                f"  reference {t_ref:.2f} s/pair, fast {t_fast:.2f} s/pair: x{t_ref / t_fast:.1f}; "
                f"largest |nll difference| {diff:.1e}; floor fraction {floor:.2f}"
            )


if __name__ == "__main__":
    main()
