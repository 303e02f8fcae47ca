"""Paper sec. 3.3.3 and appendix 10 (Fig 5, Fig 15): cumulative head ablation.

Heads are ranked by their mean mediation fraction (the gathered ``mediation`` output of the same
model and dataset, ``heads.parquet``) and a growing proportion of all heads is zeroed
(``HeadZero``): the localization-critical heads (highest mean MF for localization), the
classification-critical heads (the binary query's), the lowest-|MF| heads (the paper's control;
|MF| of ``lowest_task``) and, beyond the paper, random heads over several seeds. Localization is
generated and scored on CPU like every experiment; each row also has the gold box's
teacher-forced log-perplexity under the same ablation (``gold_nll``).

By default the samples are the probing subset WITHOUT the mediation pairs (``pool: disjoint``),
so the ranking is not tested on the images it came from; ``pool: same`` is the paper's reading.

``ablation: zero`` sets a head's output to zero (the paper); ``mean`` sets it to the head's mean
output over the mediation pairs' original images (mean ablation), which removes what the head
says about the input but keeps its constant part, so that a head whose mere presence the
network relies on is not mistaken for one that carries the object.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from ..images import open_image
from ..interventions.heads import HeadCapture, HeadZero
from ..tasks import task_prompt
from .base import Condition, Experiment, ShardJob, register
from .heads_summary import lowest, ranking
from .mediation import every_head, mediation_pairs

SETTINGS = ("localization", "classification", "lowest", "random")
MF_TASK = {"localization": "localization", "classification": "binary"}


def n_ablated(proportion: float, n_heads: int) -> int:
    """Heads zeroed for a proportion of all heads: rounded half up."""
    return int(np.floor(proportion * n_heads + 0.5))


def head_order(
    heads: pd.DataFrame,
    setting: str,
    lowest_task: str = "localization",
    seed: int = 0,
    all_heads: list[tuple[int, int]] | None = None,
) -> list[tuple[int, int]]:
    """Every head in the order a setting ablates them. ``heads``: the mediation ranking (task,
    layer, head, mf_mean); heads without a score (no kept pair) come last."""
    if setting == "random":
        every = all_heads or sorted(
            {(int(a), int(b)) for a, b in heads[["layer", "head"]].to_numpy()}
        )
        rng = np.random.default_rng(seed)
        return [every[i] for i in rng.permutation(len(every))]
    if setting == "lowest":
        return lowest(heads, lowest_task)
    if setting in MF_TASK:
        return ranking(heads, MF_TASK[setting])
    raise ValueError(f"unknown head-ablation setting {setting!r}; one of {SETTINGS}")


@torch.inference_mode()
def head_means(
    adapter, records: list[dict], categories, positions: str = "post_image"
) -> dict[tuple[int, int], torch.Tensor]:
    """Every head's mean output over ``records``' original images asked the localization prompt,
    at the positions the ablation acts on (after the image, or all)."""
    layers = range(adapter.num_layers)
    sums, count = {}, 0
    for r in records:
        enc = adapter.encode(
            [open_image(r["image_path"])],
            [task_prompt("localization", r["category"], categories)],
        )
        capture = HeadCapture(layers)
        with capture(adapter):
            adapter.model(**{k: v.to(adapter.device) for k, v in enc.inputs.items()})
        start = int(enc.image_positions[0][-1]) + 1 if positions == "post_image" else 0
        for layer in layers:
            z = capture.assemble(layer)[0, start:].double()  # (positions, heads, head_dim)
            sums[layer] = sums.get(layer, 0) + z.sum(0)
        count += len(z)
    return {
        (layer, h): (sums[layer][h] / count).float()
        for layer in layers
        for h in range(adapter.num_heads)
    }


@register
class HeadAblation(Experiment):
    name = "head_ablation"
    tasks = ("localization",)
    param_columns = ("setting", "proportion", "n_heads", "seed", "positions", "ablation")

    def exclude(self, job: ShardJob) -> dict[str, str]:
        s = job.settings
        if s.get("pool", "disjoint") == "same":
            return {}
        pairs = set(
            mediation_pairs(job.pool_ids, int(s["pairs"]["n_pairs"]), int(s["pairs"]["seed"]))
        )
        return {
            sid: "a mediation pair (the ranking is tested on other samples)"
            for sid in job.samples["sample_id"]
            if sid in pairs
        }

    def conditions(self, job: ShardJob) -> Iterator[Condition]:
        s, adapter = job.settings, job.adapter
        if "mediation" not in job.upstream:
            raise ValueError(
                "head ablation needs the mediation ranking (heads.parquet) of this model"
            )
        heads = pd.read_parquet(job.upstream["mediation"])
        every = every_head(adapter)
        ranked = set(zip(heads["layer"].astype(int), heads["head"].astype(int), strict=True))
        if ranked != set(every):
            raise ValueError(
                f"the mediation ranking covers {len(ranked)} heads, the model has {len(every)}"
            )
        positions = s.get("positions", "post_image")
        means = None
        if s.get("ablation", "zero") == "mean":
            pool = job.pool if job.pool is not None else job.samples
            pairs = (
                set(
                    mediation_pairs(
                        job.pool_ids, int(s["pairs"]["n_pairs"]), int(s["pairs"]["seed"])
                    )
                )
                if "pairs" in s
                else set()
            )
            source = pool[pool["sample_id"].isin(pairs)] if pairs else pool
            means = head_means(
                adapter,
                source.sort_values("sample_id")
                .head(int(s.get("mean_samples", 32)))
                .to_dict("records"),
                job.categories,
                positions,
            )
        how = s.get("ablation", "zero")
        yield Condition(
            "baseline",
            {
                "setting": "baseline",
                "proportion": 0.0,
                "n_heads": 0,
                "seed": -1,
                "positions": positions,
                "ablation": how,
            },
            tasks=self.tasks,
            score_gold=True,
        )
        for setting in s["settings"]:
            seeds = s["random_seeds"] if setting == "random" else [-1]
            for seed in seeds:
                order = head_order(
                    heads, setting, s.get("lowest_task", "localization"), seed, every
                )
                for p in s["proportions"]:
                    n = n_ablated(float(p), len(every))
                    if n == 0:
                        continue  # the baseline
                    params = {
                        "setting": setting,
                        "proportion": float(p),
                        "n_heads": n,
                        "seed": int(seed),
                        "positions": positions,
                        "ablation": how,
                    }
                    name = f"{setting}{'' if seed < 0 else f'_s{seed}'}_p{float(p):g}"
                    yield Condition(
                        name,
                        params,
                        HeadZero(order[:n], positions, means),
                        tasks=self.tasks,
                        score_gold=True,
                    )
