"""How many integrated-gradients steps (and which quadrature) the token-ablation conditions
need, in one run.

    python scripts/ig_steps.py --family llava [--n 30] [--dataset shapes]

Needs a demo run's outputs (results/<dataset>/samples.parquet, probing_subset_ids.txt, the mean
embedding) and the committed toy checkpoint. For each task it prints the completeness gap
(median / p90 of |sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)|) at each
quadrature and step count, and the overlap of the top-k token sets with those of the reference
(the trapezoid rule at 64 box / 24 list steps), which is what the conditions use
(docs/benchmarks.md, "Integrated gradients steps").
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vlmloc.attribution import attribute_samples
from vlmloc.data.coco import load_json
from vlmloc.data.samples import categories_of, read_samples
from vlmloc.models import load_adapter
from vlmloc.runner import Runner

# (method, steps) per task; captum's methods: riemann_trapezoid (n points, ends included) or
# gausslegendre (n Gauss-Legendre nodes: exact for polynomials of degree 2n - 1)
REFERENCE = {"localization": ("riemann_trapezoid", 64), "list": ("riemann_trapezoid", 24)}
CANDIDATES = {
    "localization": [
        ("riemann_trapezoid", 16),
        ("riemann_trapezoid", 32),
        ("gausslegendre", 8),
        ("gausslegendre", 16),
    ],
    "list": [("riemann_trapezoid", 12), ("gausslegendre", 6), ("gausslegendre", 8)],
}
FRACTIONS = (0.01, 0.04, 0.08, 0.16, 0.32, 0.48)  # the demo's k


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--family", choices=["llava", "internvl"], default="llava")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--dataset", default="shapes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--steps",
        nargs="*",
        metavar="TASK:N",
        help="trapezoid step counts to compare instead of the default candidates, e.g. "
        "localization:16 list:6",
    )
    args = ap.parse_args()
    compared = CANDIDATES
    if args.steps:
        compared = {task: [] for task in CANDIDATES}
        for item in args.steps:
            task, n = item.split(":")
            compared[task].append(("riemann_trapezoid", int(n)))
    torch.set_num_threads(args.threads)
    adapter = load_adapter(args.family, f"checkpoints/toy_{args.family}")
    d = f"results/{args.dataset}"
    samples = read_samples(f"{d}/samples.parquet", f"{d}/probing_subset_ids.txt").iloc[: args.n]
    categories, present = categories_of(
        load_json(f"resources/shapes/{args.dataset}/annotations.json"), samples
    )
    mean = torch.load(f"results/mean_embedding/toy_{args.family}.pt", weights_only=True)["mean"]
    runner = Runner(adapter, progress=False)
    pixels = [runner.pixels(p) for p in samples["image_path"]]
    records = samples.to_dict("records")
    for task, candidates in compared.items():
        runs = {}
        if not candidates:
            continue
        for method, s in [REFERENCE[task], *candidates]:
            t0 = time.perf_counter()
            runs[method, s] = attribute_samples(
                adapter,
                pixels,
                records,
                task,
                categories,
                present,
                mean,
                progress=False,
                steps=s,
                target="logit",
                importance="l1",
                method=method,
            )
            gaps = np.array([a.relative_gap for a in runs[method, s]])
            print(
                f"{args.family} {task} {method} {s} steps: {time.perf_counter() - t0:.1f} s, gap median "
                f"{np.nanmedian(gaps):.4f}, p90 {np.nanpercentile(gaps, 90):.4f}"
            )
        ref = runs[REFERENCE[task]]
        for method, s in candidates:
            for frac in FRACTIONS:
                overlap = []
                for a, b in zip(runs[method, s], ref, strict=True):
                    k = max(1, round(frac * len(b.importance)))
                    top_a, top_b = (
                        set(np.argsort(-x.importance, kind="stable")[:k]) for x in (a, b)
                    )
                    overlap.append(len(top_a & top_b) / k)
                print(
                    f"  top {frac:.0%} overlap, {method} {s} vs the reference: mean {np.mean(overlap):.3f}, "
                    f"min {np.min(overlap):.3f}"
                )


if __name__ == "__main__":
    main()
