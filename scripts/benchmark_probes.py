"""Speed and memory of the streamed closed-form positional probes against the plain reference, in
one run, with a check that both give the same accuracies.

    python scripts/benchmark_probes.py [--model checkpoints/toy_llava] [--family llava] [--method lda|ridge]
                                       [--n-train 64] [--n-test 16] [--batch-size 16] [--device cpu]

On generated shapes scenes (``probe_images("generated", ...)``), views "all", no controls:

- reference (``probes.reference``): each image alone through the stock model on the full prompt,
  features from transformers' hidden states, every site's features of every image stored, then per
  site and axis ``torch.linalg.lstsq`` (ridge) or a direct LDA on the stacked features;
- fast (``probes.fit_and_score``): batches of left-padded image prefixes, every site captured by
  hooks in one forward pass, features streamed into ``StreamingRidge`` statistics, never stored.

Prints each site's test accuracies (row, col) from both and their largest difference, which must
stay within TOLERANCE: the features are the same up to float noise (batching, padding, prefix vs
full prompt; normal equations vs lstsq), so only a token whose two best classes nearly tie can flip,
and 0.01 allows one flipped token in 100 (16 toy LLaVA test images give 1,024 tokens per site).
Then the times, the speed-up ratio and the memory: the features the reference stored against the
streamed statistics, and the one batch of features the fast path holds at a time.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from vlmloc.models import load_adapter
from vlmloc.probes import ProbeSettings, fit_and_score, probe_images
from vlmloc.probes.reference import features_of_one_image, reference_fit_and_score

TOLERANCE = 0.01


def _sync(adapter):
    if adapter.device.type == "cuda":
        torch.cuda.synchronize(adapter.device)


def _timed(adapter, fn, *args, **kw):
    _sync(adapter)
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    _sync(adapter)
    return out, time.perf_counter() - t0


def _mb(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def streamed_stats_bytes(summary: list[dict], widths: dict[str, int]) -> int:
    """What ``StreamingRidge`` keeps per site, float64: X^T X ((d+1)^2) and X^T onehot(y)
    ((d+1) x classes) of the row and the column head."""
    d = {r["site"]: widths[r["site"]] + 1 for r in summary}
    return sum(8 * d[r["site"]] * (d[r["site"]] + r["grid_rows"] + r["grid_cols"]) for r in summary)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="checkpoints/toy_llava")
    ap.add_argument("--family", default="llava", choices=["llava", "internvl"])
    ap.add_argument("--method", default="lda", choices=["lda", "ridge"])
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--n-test", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    adapter = load_adapter(args.family, args.model, dtype=args.dtype, device=args.device)
    train, test = probe_images("generated", "generated", args.n_train, args.n_test, args.seed)
    settings = ProbeSettings(
        methods=(args.method,),
        random_control=False,
        shuffled_control=False,
        validation_fraction=0.0,
        batch_size=args.batch_size,
        l2=args.l2,
    )
    tokens = sum(adapter.layout(*im.size).n_tokens for im in train) / len(train)
    print(
        f"{args.family} {args.model}: {args.n_train} train + {args.n_test} test shapes scenes, {tokens:.0f} visual "
        f"tokens per image, method {args.method}, l2 {args.l2} "
        f"({torch.get_num_threads()} threads, {args.device}, {args.dtype})"
    )

    fit_and_score(adapter, train[:2], test[:1], settings)  # warm-up: first forwards, lazy imports
    features_of_one_image(adapter, train[0], settings.task_text)
    ref, t_ref = _timed(
        adapter,
        reference_fit_and_score,
        adapter,
        train,
        test,
        (args.method,),
        settings.task_text,
        args.l2,
    )
    fast, t_fast = _timed(adapter, fit_and_score, adapter, train, test, settings)

    fast_rows = {
        r["site"]: r for r in fast.summary if r["variant"] == "true" and r["split"] == "test"
    }
    print(
        f"\n  {'site':<12} {'n_test_tok':>10}  {'ref row':>8} {'ref col':>8}  {'fast row':>8} {'fast col':>8}"
    )
    worst = 0.0
    for r in ref.summary:
        f = fast_rows[r["site"]]
        if f["n_tokens"] != r["n_tokens"]:
            sys.exit(
                f"{r['site']}: {r['n_tokens']} test tokens in the reference, {f['n_tokens']} in the fast path"
            )
        worst = max(worst, abs(f["acc_row"] - r["acc_row"]), abs(f["acc_col"] - r["acc_col"]))
        print(
            f"  {r['site']:<12} {r['n_tokens']:>10}  {r['acc_row']:8.4f} {r['acc_col']:8.4f}  "
            f"{f['acc_row']:8.4f} {f['acc_col']:8.4f}"
        )
    if set(fast_rows) != {r["site"] for r in ref.summary}:
        sys.exit(
            f"different sites: {sorted(fast_rows)} vs {sorted(r['site'] for r in ref.summary)}"
        )
    agree = worst <= TOLERANCE
    print(
        f"\n  max |fast - reference| accuracy over sites and axes: {worst:.4f} "
        f"(tolerance {TOLERANCE}): {'agree' if agree else 'DISAGREE'}"
    )

    (timing,) = fast.timing
    fast_forward = timing["forward_s"] + timing["test_forward_s"]
    ref_fit = ref.seconds["fit"] + ref.seconds["predict"]
    ref_label = "reference (one image at a time, full prompt, stored features, direct fit)"
    fast_label = f"fast (bs={args.batch_size}, image prefixes, streamed statistics)"
    print(
        f"\n  {ref_label:<74} {t_ref:7.2f} s  (forwards {ref.seconds['features']:.2f} s, fits {ref_fit:.2f} s)"
    )
    print(
        f"  {fast_label:<74} {t_fast:7.2f} s  (forwards {fast_forward:.2f} s, statistics {timing['probe_s']:.2f} s)"
    )
    print(
        f"  speed-up: x{t_ref / t_fast:.1f} (forwards alone x{ref.seconds['features'] / fast_forward:.1f})"
    )

    per_image = ref.stored_bytes["train"] / args.n_train
    stats = streamed_stats_bytes(list(fast_rows.values()), ref.widths)
    print(
        f"\n  memory, reference: stored features {_mb(ref.stored_bytes['train'])} train + "
        f"{_mb(ref.stored_bytes['test'])} test ({_mb(per_image)} per image)"
    )
    print(
        f"  memory, fast: streamed statistics {_mb(stats)} (float64, the same for any number of images) + "
        f"one batch of features at a time, about {_mb(per_image * args.batch_size)}"
    )
    print(
        f"  stored train features / streamed statistics: x{ref.stored_bytes['train'] / stats:.1f}"
    )
    if not agree:
        sys.exit(1)


if __name__ == "__main__":
    main()
