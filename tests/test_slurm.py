"""The cluster path: profiles/slurm on a real Slurm, and model-job resources from model sizes.

``test_slurm_run_equals_local_run`` needs a running Slurm cluster with the partitions of
profiles/slurm/partitions.yaml (`cpu`, `gpu`) that this machine can submit to (CI starts a single-node one with ``scripts/slurm_local_cluster.sh start``).
Without one it is skipped with the reason; with ``VLMLOC_SLURM=required`` (CI) it fails instead.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT, copy_workflow, run_snakemake

pytestmark = pytest.mark.slow

SLURM_REQUIRED = os.environ.get("VLMLOC_SLURM") == "required"

# the walk-through's run (docs/running/slurm.md): one toy model, a small shapes set, screening, the mean embedding
# and Table 5 (config/slurm_demo.yaml)
CONFIG = "config/slurm_demo.yaml"
TARGETS = [
    "results/shapes_voc/tables/table5_token_ablation_matched.tsv",
    "results/shapes_voc/tables/baseline_accuracy.tsv",
    "results/shapes_voc/figures/baseline_accuracy.png",
]
TABLES = [
    "tables/filter_counts.tsv",
    "tables/screening_counts.tsv",
    "tables/baseline_accuracy.tsv",
    "tables/false_positive_rates.tsv",
    "tables/table5_token_ablation_matched.tsv",
    "probing_subset_ids.txt",
]
MODEL_RULES = ("screen_shard", "mean_embedding_shard", "run_experiment")


PARTITIONS = yaml.safe_load((ROOT / "profiles/slurm/partitions.yaml").read_text())["partitions"]


def slurm_partitions() -> set[str]:
    """The up partitions of a reachable Slurm cluster, which must include every partition of
    profiles/slurm/partitions.yaml (the test runs the profile's partition choice as written);
    otherwise skip (or fail when Slurm is required) with the reason."""
    hint = "start one as root with `scripts/slurm_local_cluster.sh start` (installs slurm-wlm and munge with apt)"
    reason, up = None, set()
    if not (shutil.which("sinfo") and shutil.which("sbatch") and shutil.which("squeue")):
        reason = "no Slurm client (sinfo, sbatch, squeue) on PATH"
    else:
        try:
            proc = subprocess.run(
                ["sinfo", "-h", "-o", "%P %a %T"], capture_output=True, text=True, timeout=30
            )
        except subprocess.TimeoutExpired:
            proc = subprocess.CompletedProcess([], 1, "", "no answer from slurmctld within 30 s")
        rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
        up = {
            r[0].rstrip("*")
            for r in rows
            if r[1] == "up" and r[2] in ("idle", "mixed", "allocated")
        }
        if proc.returncode != 0:
            reason = f"sinfo failed: {proc.stderr.strip()[-300:]}"
        elif not set(PARTITIONS) <= up:
            reason = (
                f"partitions {sorted(set(PARTITIONS) - up)} of profiles/slurm/partitions.yaml "
                f"are not up: {proc.stdout.strip()!r}"
            )
    if reason:
        if SLURM_REQUIRED:
            pytest.fail(f"VLMLOC_SLURM=required but {reason}")
        pytest.skip(f"{reason}; {hint}")
    return up


# the site settings of profiles/slurm overridden for the test cluster: no account, job states
# from squeue (accounting is off); the partitions are the profile's own
SITE_OVERRIDES = [
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "5",
]


def checkpoint_params(folder: Path) -> int:
    total = 0
    for f in folder.glob("*.safetensors"):
        with open(f, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total


def submitted_jobs(text: str) -> dict[str, list[tuple[str, str]]]:
    """rule -> [(wildcards, Slurm job id)] of every job Snakemake submitted."""
    jobs: dict[str, list[tuple[str, str]]] = {}
    info = {}
    for block in re.split(r"\n(?=\[\w{3} \w{3} )", text):
        m = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):", block, re.M)
        jid = re.search(r"^\s+jobid: (\d+)", block, re.M)
        if m and jid:
            w = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            info[jid[1]] = (m[1], w[1] if w else "")
    for jid, slurm_id in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", text):
        rule, wildcards = info[jid]
        jobs.setdefault(rule, []).append((wildcards, slurm_id))
    return jobs


def scontrol(job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\w+)=(\S+)", out))


def test_slurm_run_equals_local_run(tmp_path):
    slurm_partitions()
    local_dir, slurm_dir = copy_workflow(tmp_path / "local"), copy_workflow(tmp_path / "slurm")
    # the local reference runs meanwhile: the Slurm run mostly waits for status checks
    local = subprocess.Popen(
        [sys.executable, "-m", "snakemake", *TARGETS, "--cores", "1", "--configfile", CONFIG],
        cwd=local_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    start = time.monotonic()
    slurm = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            *TARGETS,
            "--workflow-profile",
            "profiles/slurm",
            "--configfile",
            CONFIG,
            *SITE_OVERRIDES,
        ],
        cwd=slurm_dir,
        capture_output=True,
        text=True,
    )
    slurm_wall = time.monotonic() - start
    local_out = local.communicate()[0]
    assert local.returncode == 0, local_out[-4000:]
    out = slurm.stdout + slurm.stderr
    assert slurm.returncode == 0, out[-6000:]
    print(f"Slurm run: {slurm_wall:.0f} s")

    # model jobs and the data stages went through sbatch; downloads, tables and figures ran here
    jobs = submitted_jobs(out)
    assert {
        "make_shapes",
        "filter_samples",
        "remove_objects_shard",
        "gather_removed",
        "gather_screening",
        "probing_subset",
        "gather_mean_embedding",
        "score_experiment",
        *MODEL_RULES,
    } <= set(jobs), jobs
    assert (
        len(jobs["screen_shard"]) == 2
        and len(jobs["mean_embedding_shard"]) == 2
        and len(jobs["run_experiment"]) == 2
    )
    assert re.search(r"^localrule figure_baseline_accuracy:", out, re.M)
    assert re.search(r"^localrule table_token_ablation_matched:", out, re.M)
    assert not {r for r in jobs if r.startswith(("figure_", "table_"))}, jobs

    # each model job asked Slurm for what the config derives from the model's size
    weights_gb = checkpoint_params(ROOT / "checkpoints/toy_llava") * 4 / 1e9  # float32
    mem_mb = math.ceil((4 + 1.1 * weights_gb) * 1024)  # host_memory_gb + weights, a GPU job
    for rule in MODEL_RULES:
        for wildcards, slurm_id in jobs[rule]:
            job = scontrol(slurm_id)
            assert job["JobState"] == "COMPLETED", (rule, wildcards, job["JobState"])
            assert job["Partition"] == "gpu", (rule, job["Partition"])  # it asked for a GPU
    # every other job asked for none and went to the partition without GPUs
    for rule, submitted in jobs.items():
        for wildcards, slurm_id in submitted if rule not in MODEL_RULES else []:
            assert scontrol(slurm_id)["Partition"] == "cpu", (rule, wildcards)
            assert job["MinMemoryNode"] == f"{mem_mb}M", (rule, job["MinMemoryNode"])
            assert job["TimeLimit"] == "00:15:00", (rule, job["TimeLimit"])  # min_runtime for a toy
            assert job.get("TresPerJob") == "gres:gpu:1", (rule, job.get("TresPerJob"))  # --gpus=1
            assert job["NumCPUs"] == "1"

    # the same tables, byte for byte, and the same rows and mean embedding
    for name in TABLES:
        a, b = (d / "results/shapes_voc" / name for d in (local_dir, slurm_dir))
        assert a.read_bytes() == b.read_bytes(), name
    rows = "results/shapes_voc/experiments/token_ablation_matched/toy_llava/rows.parquet"
    pd.testing.assert_frame_equal(
        pd.read_parquet(local_dir / rows), pd.read_parquet(slurm_dir / rows)
    )
    me_local, me_slurm = (
        torch.load(d / "results/mean_embedding/toy_llava.pt", weights_only=True)
        for d in (local_dir, slurm_dir)
    )
    assert torch.equal(me_local["mean"], me_slurm["mean"]) and me_local["n_images"] == 8
    table5 = pd.read_csv(
        slurm_dir / "results/shapes_voc/tables/table5_token_ablation_matched.tsv", sep="\t"
    )
    assert len(table5) > 0 and (table5.select_dtypes("number").abs().sum().sum() > 0)
    assert (
        int((slurm_dir / "results/shapes_voc/probing_subset_ids.txt").read_text().count("\n")) > 0
    )


def resources_by_job(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """(rule, wildcards) -> resources, from a dry run's job listing."""
    out = {}
    for block in re.split(r"\n(?=\[\w{3} \w{3} )", text):
        m = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):", block, re.M)
        w = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        r = re.search(r"^\s+resources: (.*)$", block, re.M)
        if m and r:
            out[(m[1], w[1] if w else "")] = dict(kv.split("=", 1) for kv in r[1].split(", "))
    return out


def model_job(res, rule, model, **wildcards) -> dict[str, int]:
    keys = [
        k
        for k in res
        if k[0] == rule
        and f"model={model}" in k[1]
        and all(f"{a}={b}" in k[1] for a, b in wildcards.items())
    ]
    assert keys, (rule, model, wildcards)
    return {
        k: int(v)
        for k, v in res[keys[0]].items()
        if k in ("mem_mb", "runtime", "cpus_per_task", "gpu")
    }


def test_wall_time_comes_from_the_flop_count(workflow_dir):
    """A job's runtime is its necessary FLOPs (vlmloc.workload) at floor_fraction of the GPU's
    rate: more mediation pairs, more time; the same count by hand."""
    from vlmloc import workload

    def mediation_runtime(overlay):
        (workflow_dir / "more.yaml").write_text(overlay)
        # the target first: --configfile takes every path after it
        dry = run_snakemake(
            workflow_dir,
            "-n",
            "results/coco/experiments/mediation/llava15_7b/raw/shard-0.parquet",
            "--configfile",
            "config/paper.yaml",
            "more.yaml",
        )
        return model_job(
            resources_by_job(dry.stdout + dry.stderr),
            "run_experiment",
            "llava15_7b",
            experiment="mediation",
        )["runtime"]

    few = mediation_runtime("experiments: {mediation: {n_pairs: 50}}\n")
    many = mediation_runtime("experiments: {mediation: {n_pairs: 4000}}\n")
    settings = {"n_pairs": 4000, "tasks": ["localization", "binary"]}
    flops = (
        workload.experiment_flops(
            workload.Geometry.of_paper("llava-1.5-7b"), "mediation", settings, 0
        )
        / 4
    )  # 4 shards
    assert many == math.ceil(flops / (989e12 * 0.1) / 60), (many, flops)
    assert few == 15 < many  # 50 pairs take minutes: min_runtime


def test_model_job_resources_follow_model_size(workflow_dir):
    """The paper scope's model jobs: memory, wall time, CPUs and GPUs grow with the model."""
    # 40 GB GPUs: LLaVA-13B's 26.7 GB of weights fit one with 8 GB of headroom (its batches
    # shrink to fit: vlmloc.workflow.memory); with 16 GB they do not, a config error
    (workflow_dir / "gpus40.yaml").write_text(
        "job_resources: {gpu_memory_gb: 40, gpu_headroom_gb: 8}\n"
    )
    (workflow_dir / "gpus24.yaml").write_text("job_resources: {gpu_memory_gb: 24}\n")
    bad = run_snakemake(
        workflow_dir, "-n", "--configfile", "config/paper.yaml", "gpus24.yaml", check=False
    )
    assert bad.returncode != 0
    assert "models.llava15_13b: 26.7 GB of bfloat16 weights" in bad.stderr + bad.stdout
    # --resources gpu=8: as many GPUs as a cluster; without it, profiles/default caps GPUs at 1
    for extra in (
        ["--resources", "gpu=8"],
        ["gpus40.yaml", "--resources", "gpu=8"],
        ["gpus40.yaml"],
    ):
        dry = run_snakemake(workflow_dir, "-n", "--configfile", "config/paper.yaml", *extra)
        res = resources_by_job(dry.stdout + dry.stderr)
        for rule, wc in (
            ("screen_shard", {"dataset": "coco"}),
            ("mean_embedding_shard", {}),
            ("run_experiment", {"experiment": "token_ablation"}),
        ):
            small, large, internvl = (
                model_job(res, rule, m, **wc)
                for m in ("llava15_7b", "llava15_13b", "internvl35_8b")
            )
            # bf16 weights: 7.06B -> 14.1 GB, 13.35B -> 26.7 GB; host RAM = 4 GB + 1.1 x weights
            assert small["mem_mb"] == math.ceil((4 + 1.1 * 7.06 * 2) * 1024)
            assert large["mem_mb"] == math.ceil((4 + 1.1 * 13.35 * 2) * 1024)
            assert small["mem_mb"] < internvl["mem_mb"] < large["mem_mb"]
            if rule == "run_experiment":  # hours of work: the wall time follows the FLOPs
                assert (
                    small["runtime"] < internvl["runtime"] and small["runtime"] < large["runtime"]
                ), (small, large, internvl)
            else:  # minutes of work at a tenth of the GPU's peak: the floor
                assert small["runtime"] >= 15 and large["runtime"] >= small["runtime"]
            # one GPU per job, whatever its size; 4 CPUs per GPU
            assert small["gpu"] == 1 and large["gpu"] == 1
            assert small["cpus_per_task"] == 4 and large["cpus_per_task"] == 4
        # object removal with LaMa asks for a GPU too; downloads for none
        assert res[next(k for k in res if k[0] == "remove_objects_shard")]["gpu"] == "1"
        assert "gpu" not in res[next(k for k in res if k[0] == "download")]


def test_slurm_demo_overlay_validates():
    """config/slurm_demo.yaml (the walk-through's run, docs/running/slurm.md) is a valid overlay of config.yaml."""
    import copy

    from snakemake.utils import update_config, validate

    merged = copy.deepcopy(yaml.safe_load((ROOT / "config.yaml").read_text()))
    update_config(merged, yaml.safe_load((ROOT / CONFIG).read_text()))
    validate(merged, str(ROOT / "workflow/schemas/config.schema.yaml"))
    assert merged["run"]["models"] == ["toy_llava"] and merged["models"]["toy_llava"]["gpus"] == 1
    assert merged["screening"]["shards"] == 2 and merged["mean_embedding"]["shards"] == 2
    assert (
        merged["job_resources"]["gpu_memory_gb"] == 80
    )  # the rest of job_resources from config.yaml


def test_job_resources_config_errors_name_the_key(workflow_dir):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(ROOT / "workflow/schemas/config.schema.yaml")
    for edit, key in (
        (lambda c: c["job_resources"].update(gpu_mem_gb=40), "gpu_mem_gb"),
        (lambda c: c["models"]["llava15_7b"].update(params_b=-7), "params_b"),
        (lambda c: c["mean_embedding"].update(shards=0), "shards"),
    ):
        cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
        edit(cfg)
        with pytest.raises(WorkflowError, match=key):
            validate(cfg, schema)
    # a hub model needs its size before any job runs (a local checkpoint's is counted)
    (workflow_dir / "hub.yaml").write_text(
        "run: {models: [mine]}\nmodels: {mine: {family: llava, hub_id: me/mine}}\n"
    )
    proc = run_snakemake(workflow_dir, "-n", "--configfile", "hub.yaml", check=False)
    assert (
        proc.returncode != 0
        and "models.mine.params_b: needed for a hub model" in proc.stdout + proc.stderr
    )


class FakeJob:
    """What the Slurm plugin's partition choice reads of a job: its name, threads, resources."""

    def __init__(self, name: str, **resources):
        self.name, self.threads = name, resources.pop("threads", 1)
        self.resources = SimpleNamespace(**resources)
        self.resources.get = lambda key, default=None: resources.get(key, default)


def test_the_partition_follows_the_jobs_gpu_resource():
    """The profile lists no rule: the plugin sends each job to a partition of
    profiles/slurm/partitions.yaml by the job's own `gpu` resource (a rule that once had to be
    listed by hand, probe_model, was left out and would have queued its GPU jobs on the CPU
    partition). The real Slurm run above checks it with `scontrol show job`."""
    from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file

    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile["slurm-partition-config"] == "profiles/slurm/partitions.yaml"
    text = (ROOT / "profiles/slurm/config.yaml").read_text()
    assert "slurm_partition" not in text and "set-resources" not in profile
    partitions = read_partition_file(ROOT / profile["slurm-partition-config"])
    log = SimpleNamespace(info=lambda *a: None, debug=lambda *a: None, warning=lambda *a: None)
    for gpu, mem_mb, runtime, expected in [
        (1, 30_000, 600, "gpu"),  # a 7B model job
        (2, 60_000, 2000, "gpu"),
        (0, 5_000, 15, "cpu"),  # a toy's model job (`gpus: 0`), a data stage
        (0, 1_000, 10, "cpu"),
    ]:
        job = FakeJob("run_experiment", gpu=gpu, mem_mb=mem_mb, runtime=runtime, cpus_per_task=4)
        assert get_best_partition(partitions, job, log) == expected, (gpu, mem_mb)
    # more GPUs than a partition's nodes have: no partition fits (the plugin falls back to the
    # cluster's default and Slurm refuses the job, rather than queueing it on the CPU partition)
    assert get_best_partition(partitions, FakeJob("x", gpu=9), log) is None
