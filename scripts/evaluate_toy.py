"""Held-out quality of a (toy) model on fresh shapes images, as the README reports it.

    python scripts/evaluate_toy.py checkpoints/toy_llava --family llava [--images 200] [--write]

Generator -> filters -> exact object removal -> screening (both tasks, binary query, original and
object-removed) -> why localization answers miss (right object but imprecise, another object,
nowhere; success per object size) -> object-token vs random-token ablation (mean embedding, 3
random seeds).
--fit-gap N also compares localization on N scenes of the model's own training pool with N
unseen ones (seed and pool size from <model>/training_config.json): underfit or memorised.
--write stores the figures in <model>/eval.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from vlmloc.data.shapes import ShapesSpec
from vlmloc.experiments.token_ablation import object_indices, random_indices_like, run_ablated
from vlmloc.interventions import mean_visual_embedding
from vlmloc.models import load_adapter
from vlmloc.runner import Runner
from vlmloc.toy.evaluate import (
    MAX_NEW_TOKENS,
    evaluate,
    fit_gap,
    held_out_set,
    localization_breakdown,
    localization_errors,
    summarize,
)


def ablation_summary(
    adapter, samples, categories, mean_images, baseline: dict, seeds=(0, 1, 2)
) -> dict:
    """Localization and list classification with the object's tokens, or as many random ones, set
    to the mean visual embedding; ``baseline``: ``summarize`` of the unablated answers."""
    runner = Runner(adapter, batch_size=32, progress=False)
    value = mean_visual_embedding(adapter, mean_images)
    obj = object_indices(adapter, samples)
    out = {"tokens_ablated_mean": float(np.mean([len(i) for i in obj]))}

    def score(indices):
        rows = run_ablated(runner, samples, categories, indices, value, MAX_NEW_TOKENS)
        return rows[rows["task"] == "localization"]["loc_score"].mean(), rows[
            rows["task"] == "list"
        ]["identified"].mean()

    out["loc_baseline"], out["cls_baseline"] = (
        baseline["loc_score"],
        baseline["cls_list"],
    )  # already generated
    out["loc_object"], out["cls_object"] = score(obj)
    rand = [score(random_indices_like(adapter, samples, [len(i) for i in obj], s)) for s in seeds]
    out["loc_random"], out["cls_random"] = (float(np.mean([r[k] for r in rand])) for k in (0, 1))
    out["loc_random_std"] = float(np.std([r[0] for r in rand]))
    return {k: float(v) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("model_dir")
    ap.add_argument("--family", required=True)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument(
        "--fit-gap",
        type=int,
        default=0,
        metavar="N",
        help="training-pool scenes against unseen ones (0: skip)",
    )
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    adapter = load_adapter(args.family, args.model_dir, dtype="float32", device="cpu")
    spec = ShapesSpec()
    with tempfile.TemporaryDirectory() as tmp:
        samples, removed = held_out_set(Path(tmp) / "eval", spec, args.images, args.seed)
        mean_set, _ = held_out_set(Path(tmp) / "mean", spec, 32, args.seed + 1)
        answers = evaluate(adapter, samples, removed, spec.categories)
        result = summarize(answers)
        coco = json.loads((Path(tmp) / "eval" / "annotations.json").read_text())
        result.update(localization_breakdown(localization_errors(answers, samples, coco)))
        mean_images = list(dict.fromkeys(mean_set["image_path"]))
        result.update(
            ablation_summary(adapter, samples, spec.categories, mean_images, baseline=result)
        )
    result.update({"held_out_images": args.images, "held_out_seed": args.seed})
    if args.fit_gap:
        trained = json.loads((Path(args.model_dir) / "training_config.json").read_text())
        result.update(fit_gap(adapter, spec, trained["seed"], trained["pool_images"], args.fit_gap))
    print(json.dumps(result, indent=2))
    if args.write:
        (Path(args.model_dir) / "eval.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
