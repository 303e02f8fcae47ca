"""How far a finished run's model jobs are from the FLOP floor, and the floor of the whole run.

    python scripts/demo_floor.py [--cores 2] [--threads 1]

After a run (``make demo``), for every experiment job of the toys that has a benchmark file
(``benchmarks/experiments/...``): the FLOPs it could not skip, counted as ``scripts/benchmark.py``
counts them (``vlmloc.experiments.necessary_flops``: ``vlmloc.workload``'s yardstick on the job's REAL token counts: each image's views
once, each image prefix once per condition that reruns it, each question, each decoded token
read back from the raw answers, each teacher-forced gold answer, and integrated gradients' steps
as three passes of the whole sequence), over the job's wall time and this machine's
matrix-multiply rate for the toys' shapes (measured here, ``--threads`` threads). The last line is
the run's floor: the sum of the jobs' necessary FLOPs over ``--cores`` cores at that rate, the
time no implementation of the same content can beat on this machine (docs/benchmarks.md,
"Demo time").
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pandas as pd
import torch
import yaml

from vlmloc.data.coco import load_json
from vlmloc.data.samples import categories_of, read_samples
from vlmloc.experiments.necessary_flops import Flops
from vlmloc.models import load_adapter
from vlmloc.plans import ig_steps
from vlmloc.tasks import TASKS, task_prompt
from vlmloc.workflow.settings import experiment_settings
from vlmloc.workload import Geometry

# shares the prefix: its conditions act after the image (one prefix run per batch of samples)
SHARED_PREFIX = {"attention_knockout", "head_ablation"}
IG_EXPERIMENTS = {"token_ablation", "token_ablation_matched"}


def matmul_rate(hidden: int, mlp: int, rows: int = 4096, repeats: int = 20) -> float:
    """FLOP/s of the toys' largest products (rows x hidden @ hidden x mlp), float32."""
    import time

    a, b = torch.randn(rows, hidden), torch.randn(hidden, mlp)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * rows * hidden * mlp * repeats / (time.perf_counter() - t)


def job_flops(flops, config, experiment, model, rows, records, max_new) -> float:
    """Necessary FLOPs of one job from its raw rows."""
    by_id = {r["sample_id"]: r for r in records}
    rows = rows[rows["task"].isin(TASKS)]  # not the rows that only record an excluded sample
    if experiment == "mediation":
        s = config["experiments"]["mediation"]
        pairs = [by_id[i] for i in dict.fromkeys(rows["sample_id"])]
        g = flops.g
        return flops.mediation(pairs, s["tasks"], g.layers * g.heads)
    conditions = rows["condition"].nunique()
    total = 0.0
    prompt = {}
    for r in {i: by_id[i] for i in rows["sample_id"]}.values():
        total += flops.vision(r)
        prefix, _ = flops.split(r, task_prompt("localization", r["category"], flops.categories))
        runs = 1 if experiment in SHARED_PREFIX else conditions
        total += runs * flops.g.decoder(prefix)
    for row in rows.to_dict("records"):
        r = by_id[row["sample_id"]]
        key = (row["sample_id"], row["task"])
        if key not in prompt:
            prompt[key] = flops.split(r, task_prompt(row["task"], r["category"], flops.categories))
        prefix, question = prompt[key]
        total += flops.g.decoder(question, prefix)
        steps = flops.decoded(row["answer"], bool(row["truncated"]), max_new[row["task"]])
        total += sum(flops.g.decoder(1, prefix + question + i) for i in range(steps))
        if not pd.isna(row.get("gold_nll", float("nan"))):
            gold = flops.adapter.gold_tokens(
                row["task"], r, task_prompt(row["task"], r["category"], flops.categories)
            )
            total += flops.g.decoder(question + len(gold), prefix, logits=len(gold) + 1)
    if experiment in IG_EXPERIMENTS:
        ig = experiment_settings(config["experiments"], experiment, model)["integrated_gradients"]
        for task in ("localization", "list"):
            steps = ig_steps(ig, task)
            for sid in dict.fromkeys(rows["sample_id"]):
                r = by_id[sid]
                prefix, question = flops.split(
                    r, task_prompt(task, r["category"], flops.categories)
                )
                gold = flops.adapter.gold_tokens(
                    task, r, task_prompt(task, r["category"], flops.categories)
                )
                n = prefix + question + len(gold)
                total += 3 * steps * flops.g.decoder(n, logits=len(gold) + 1)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(Path(args.config).read_text())
    max_new = config["screening"]["max_new_tokens"]
    print(
        "| model | job | shard | necessary GFLOP | wall s | GFLOP/s | floor fraction |\n"
        "|---|---|---|---|---|---|---|"
    )
    total_flops = total_wall = 0.0
    rates = []
    for model in config["run"]["models"]:
        m = config["models"][model]
        folder = Path(m["path"])
        adapter = load_adapter(m["family"], folder, dtype="float32", device="cpu")
        cfg = adapter.model.config.text_config
        rate = matmul_rate(cfg.hidden_size, cfg.intermediate_size)
        rates.append(rate)
        geometry = Geometry.of_checkpoint(folder, 1)
        for bench in sorted(Path("benchmarks/experiments").glob(f"*/*/{model}/shard-*.tsv")):
            dataset, experiment = bench.parts[2], bench.parts[3]
            raw = Path(
                f"results/{dataset}/experiments/{experiment}/{model}/raw/{bench.stem}.parquet"
            )
            if not raw.exists():
                continue
            rows = pd.read_parquet(raw)
            if not len(rows):
                continue
            d = f"results/{dataset}"
            samples = read_samples(f"{d}/samples.parquet", f"{d}/probing_subset_ids.txt")
            categories, _ = categories_of(
                load_json(f"resources/shapes/{dataset}/annotations.json"), samples
            )
            flops = Flops(adapter, geometry, categories)
            f = job_flops(
                flops, config, experiment, model, rows, samples.to_dict("records"), max_new
            )
            wall = float(list(csv.reader(bench.open(), delimiter="\t"))[-1][0])
            total_flops, total_wall = total_flops + f, total_wall + wall
            print(
                f"| {model} | {experiment} ({dataset}) | {bench.stem} | {f / 1e9:,.0f} | "
                f"{wall:.0f} | {f / wall / 1e9:.1f} | {f / wall / rate:.2f} |"
            )
    rate = min(rates)
    print(
        "\nmatrix-multiply rate for the toys' products: "
        + ", ".join(f"{r / 1e9:.1f}" for r in rates)
        + f" GFLOP/s ({args.threads} thread)"
    )
    print(
        f"experiment jobs: {total_flops / 1e12:.2f} TFLOP necessary in {total_wall:.0f} job-seconds "
        f"({total_flops / total_wall / 1e9:.1f} GFLOP/s, floor fraction "
        f"{total_flops / total_wall / rate:.2f}); their floor on {args.cores} cores: "
        f"{total_flops / rate / args.cores / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
