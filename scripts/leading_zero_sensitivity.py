"""How much LLaVA's mediation fractions depend on whether the "0." of a box coordinate is template
or content (``box_leading_zero``, docs/methods/mediation.md).

Reruns the localization mediation of a finished run's pairs with both masks on one checkpoint and
prints: that the ``content`` mask reproduces the run's own nll (when the run predates the option,
its rows were written with that rule), the rank correlation over heads of the mean MF under the
two masks, and the largest shift of a head's mean MF. Pairs count as in the tables: |log P_base -
log P_src| >= min_log_gap under the mask in question.

    python scripts/leading_zero_sensitivity.py RUN_DIR checkpoints/toy_llava [--dataset shapes]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from vlmloc.defaults import defaults
from vlmloc.experiments.mediation import every_head, mediate_pair
from vlmloc.models import load_adapter
from vlmloc.runner import Runner
from vlmloc.tasks import task_prompt

MEDIATION = {k: defaults("experiments.mediation")[k] for k in ("positions", "heads_per_batch")}


def mean_mf(results: list[dict], min_log_gap: float) -> tuple[np.ndarray, int]:
    """Per head, the mean MF over the pairs whose base and source differ enough; the pair count."""
    mfs = []
    for r in results:
        if abs(r["base"] - r["source"]) < min_log_gap:  # nll = log perplexity
            continue
        pb, ps, pp = np.exp(r["base"]), np.exp(r["source"]), np.exp(r["patched"])
        mfs.append((pb - pp) / (pb - ps))
    return np.mean(mfs, axis=0), len(mfs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished run's folder (holding results/)")
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--dataset", default="shapes")
    ap.add_argument("--model", default="toy_llava")
    ap.add_argument("--min-log-gap", type=float, default=0.25)
    args = ap.parse_args()

    res = args.run / "results" / args.dataset
    raw = pd.read_parquet(
        res / "experiments" / "mediation" / args.model / "raw" / "shard-0.parquet"
    )
    raw = raw[raw["task"] == "localization"]
    samples = pd.read_parquet(res / "samples.parquet").set_index("sample_id")
    removed = pd.read_parquet(res / "removed.parquet").set_index("sample_id")["removed_path"]
    categories = list(dict.fromkeys(pd.read_parquet(res / "samples.parquet")["category"]))
    pairs = list(dict.fromkeys(raw["sample_id"]))

    adapters = {
        m: load_adapter("llava", args.checkpoint, dtype="float32", box_leading_zero=m)
        for m in ("content", "template")
    }
    runner = Runner(adapters["content"], progress=False)
    results = {m: [] for m in adapters}
    same = 0
    for done, sid in enumerate(pairs):
        print(f"pair {done + 1}/{len(pairs)}", flush=True)
        r = {**samples.loc[sid].to_dict(), "sample_id": sid}
        r["image_path"] = str(args.run / r["image_path"])
        src = runner.pixels(r["image_path"])
        base = runner.pixels(str(args.run / removed[sid]))
        for mask, a in adapters.items():
            layout = a.layout(int(r["width"]), int(r["height"]))
            text = task_prompt("localization", r["category"], categories)
            gold = a.gold_tokens("localization", r, text)
            (out,) = mediate_pair(a, src, base, layout, [(text, gold)], **MEDIATION)
            results[mask].append(out)
            if mask == "content":
                rows = raw[raw["sample_id"] == sid].set_index("condition")["nll"]
                same += bool(
                    np.isclose(rows["base"], out["base"], atol=1e-6)
                    and np.isclose(rows["source"], out["source"], atol=1e-6)
                )
    heads = every_head(adapters["content"])
    mf = {m: mean_mf(results[m], args.min_log_gap) for m in results}
    ranks = [pd.Series(mf[m][0]).rank().to_numpy() for m in ("content", "template")]
    rho = float(np.corrcoef(*ranks)[0, 1])  # Spearman: Pearson of the ranks
    shift = np.abs(mf["content"][0] - mf["template"][0])
    k = int(np.argmax(shift))
    print(f"pairs: {len(pairs)}; the content mask reproduces the run's base/source nll on {same}")
    for m, (_, n) in mf.items():
        print(f"  {m}: {n} pairs kept (|log gap| >= {args.min_log_gap})")
    print(f"Spearman rho of the heads' mean MF, content vs template: {rho:.3f}")
    print(
        f"largest |mean MF shift|: {shift[k]:.3f} at layer {heads[k][0]} head {heads[k][1]} "
        f"({mf['content'][0][k]:.3f} -> {mf['template'][0][k]:.3f}); median {np.median(shift):.3f}"
    )
    top = {m: set(np.argsort(-v[0])[:3]) for m, v in mf.items()}
    print(f"top-3 heads shared: {len(top['content'] & top['template'])} of 3")


if __name__ == "__main__":
    main()
