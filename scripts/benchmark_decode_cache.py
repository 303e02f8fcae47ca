"""One decode step after a shared prefix: transformers' DynamicCache (concatenates the whole
cache at every step) against the runner's preallocated ``static_prefix_cache``, in one run.

    python scripts/benchmark_decode_cache.py [--family llava] [--prefix 130] [--steps 20]

On the committed toy checkpoint; prints ms per step for several batch sizes, and checks that both
caches give the same greedy tokens (docs/benchmarks.md, "Decoding into a preallocated cache").
"""

from __future__ import annotations

import argparse
import time

import torch

from vlmloc.models import load_adapter
from vlmloc.runner import static_prefix_cache


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--family", choices=["llava", "internvl"], default="llava")
    ap.add_argument("--prefix", type=int, default=130)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_adapter(args.family, f"checkpoints/toy_{args.family}").model
    vocab = model.config.text_config.vocab_size
    g = torch.Generator().manual_seed(0)
    for rows in (8, 62, 186):
        ids = torch.randint(5, vocab - 5, (rows, args.prefix), generator=g)
        prefix = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
        first = torch.randint(5, vocab - 5, (rows, 1), generator=g)
        out, ms = {}, {}
        for kind in ("dynamic", "static"):
            cache = (
                prefix
                if kind == "dynamic"
                else static_prefix_cache(model, prefix, rows, args.prefix + args.steps)
            )
            nxt, tokens = first, []
            t0 = time.perf_counter()
            for s in range(args.steps):
                pos = torch.full((rows, 1), args.prefix + s)
                logits = model(
                    input_ids=nxt, past_key_values=cache, position_ids=pos, logits_to_keep=1
                ).logits
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                tokens.append(nxt)
            ms[kind] = 1000 * (time.perf_counter() - t0) / args.steps
            out[kind] = torch.cat(tokens, 1)
            if kind == "dynamic":
                prefix.crop(args.prefix - prefix.get_seq_length())
        same = bool(torch.equal(out["dynamic"], out["static"]))
        print(
            f"{rows} rows: DynamicCache {ms['dynamic']:.1f} ms per step, static prefix cache {ms['static']:.1f} ms "
            f"(x{ms['dynamic'] / ms['static']:.2f}), same tokens: {same}"
        )


if __name__ == "__main__":
    main()
