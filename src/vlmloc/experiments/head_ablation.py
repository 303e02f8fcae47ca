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
network relies on (one that writes the answer's brackets) is not mistaken for one that carries
the object. ``ablation`` and ``positions`` each take one value or a list: every combination
runs, beside one shared unmodified baseline. ``rank_by`` says which statistic of MF over the
pairs ranks the heads (``head_ranking.STATISTICS``; the paper's is the mean).
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
from .head_ranking import lowest, ranking
from .mediation import every_head, mediation_pairs

SETTINGS = ("localization", "classification", "lowest", "random")
MF_TASK = {"localization": "localization", "classification": "binary"}


def as_list(value) -> list[str]:
    """A setting given as one value or a list of them, as a list."""
    return [value] if isinstance(value, str) else list(value)


def variant_suffix(how: str, positions: str) -> str:
    """A condition name's suffix for an ablation variant (none for the paper's zero ablation
    after the image, so the default run's names stay as they were)."""
    return "" if (how, positions) == ("zero", "post_image") else f"_{how}_{positions}"


def n_ablated(proportion: float, n_heads: int) -> int:
    """Heads zeroed for a proportion of all heads: rounded half up."""
    return int(np.floor(proportion * n_heads + 0.5))


def head_order(
    heads: pd.DataFrame,
    setting: str,
    lowest_task: str = "localization",
    seed: int = 0,
    all_heads: list[tuple[int, int]] | None = None,
    statistic: str = "mean",
) -> list[tuple[int, int]]:
    """Every head in the order a setting ablates them. ``heads``: the mediation ranking (task,
    layer, head and the statistics of MF); ``statistic`` ranks them (the critical settings: its
    highest first; lowest: its |value| smallest first); heads without a score (no kept pair)
    come last."""
    if setting == "random":
        every = all_heads or sorted(
            {(int(a), int(b)) for a, b in heads[["layer", "head"]].to_numpy()}
        )
        rng = np.random.default_rng(seed)
        return [every[i] for i in rng.permutation(len(every))]
    if setting == "lowest":
        return lowest(heads, lowest_task, statistic)
    if setting in MF_TASK:
        return ranking(heads, MF_TASK[setting], statistic)
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
    param_columns = ("setting", "proportion", "n_heads", "seed", "positions", "ablation", "rank_by")

    def exclude(self, job: ShardJob) -> dict[str, str]:
        s = self.settings(job)
        if s["pool"] == "same":
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
        s, adapter = self.settings(job), job.adapter
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
        variants = [
            (how, positions)
            for how in as_list(s["ablation"])
            for positions in as_list(s["positions"])
        ]
        rank_by = s["rank_by"]
        means = {}
        for how, positions in variants:
            if how == "mean" and positions not in means:
                means[positions] = head_means(
                    adapter, self._mean_records(job), job.categories, positions
                )
        yield Condition(
            "baseline",
            {
                "setting": "baseline",
                "proportion": 0.0,
                "n_heads": 0,
                "seed": -1,
                "positions": variants[0][1],
                "ablation": variants[0][0],
                "rank_by": rank_by,
            },
            tasks=self.tasks,
            score_gold=True,
        )
        for how, positions in variants:
            for setting in s["settings"]:
                seeds = s["random_seeds"] if setting == "random" else [-1]
                for seed in seeds:
                    order = head_order(heads, setting, s["lowest_task"], seed, every, rank_by)
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
                            "rank_by": rank_by,
                        }
                        name = f"{setting}{'' if seed < 0 else f'_s{seed}'}_p{float(p):g}"
                        yield Condition(
                            name + variant_suffix(how, positions),
                            params,
                            HeadZero(
                                order[:n],
                                positions,
                                means.get(positions) if how == "mean" else None,
                            ),
                            tasks=self.tasks,
                            score_gold=True,
                        )

    def _mean_records(self, job: ShardJob) -> list[dict]:
        """The images whose head outputs give the mean ablation's means: the first
        ``mean_samples`` mediation pairs (by sample id), else of the pool."""
        s = self.settings(job)
        pool = job.pool if job.pool is not None else job.samples
        pairs = (
            set(mediation_pairs(job.pool_ids, int(s["pairs"]["n_pairs"]), int(s["pairs"]["seed"])))
            if "pairs" in s
            else set()
        )
        source = pool[pool["sample_id"].isin(pairs)] if pairs else pool
        return source.sort_values("sample_id").head(int(s["mean_samples"])).to_dict("records")
