"""What a model job asks an executor for (memory, wall time, CPUs, GPUs), from the model's size
and the job's necessary FLOPs: the pure logic behind the workflow's model-job resources
(workflow/rules/common.smk calls it with the config's values). Torch-free."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from ..defaults import with_defaults

BYTES_PER_PARAM = {"float32": 4, "float16": 2, "bfloat16": 2}


def safetensors_params(folder: str | Path) -> int:
    """Parameters in a local checkpoint's safetensors files, read from their headers (no weights)."""
    total = 0
    for f in sorted(Path(folder).glob("*.safetensors")):
        with open(f, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total


def params_b(model: dict) -> float:
    """Billions of parameters: `params_b`, else counted in a local checkpoint (tiny: ~0)."""
    if "params_b" in model:
        return model["params_b"]
    if "tiny" in model:
        return 0.001
    return safetensors_params(model["path"]) / 1e9


def gpus(model: dict, job: dict) -> int:
    """GPUs of a model job: 1, or the model's `gpus` if set (0 for the CPU-sized toys, so their
    jobs run side by side); 0 for tiny models and `device: cpu`. Never more than one: the loader
    puts the model on one device, so a second GPU would sit idle; a job fits its batch sizes to
    its GPU instead (`vlmloc.workflow.memory`), and `too_big_for_one_gpu` is a config error."""
    if "tiny" in model or model.get("device") == "cpu":
        return 0
    return min(1, model.get("gpus", 1))


def too_big_for_one_gpu(model: dict, job: dict) -> str | None:
    """Why a GPU model's weights plus `gpu_headroom_gb` do not fit one GPU of `gpu_memory_gb`
    (None when they do)."""
    if gpus(model, job) == 0:
        return None
    weights_gb = params_b(model) * BYTES_PER_PARAM[model["dtype"]]
    need = weights_gb + job["gpu_headroom_gb"]
    if need <= job["gpu_memory_gb"]:
        return None
    return (
        f"{weights_gb:.1f} GB of {model['dtype']} weights + {job['gpu_headroom_gb']} GB of "
        f"headroom do not fit one GPU of job_resources.gpu_memory_gb = {job['gpu_memory_gb']} "
        "(a job uses one GPU: use larger GPUs or a smaller dtype)"
    )


def expected_count(path: str | Path, fallback: int) -> int:
    """Rows of a results file once it exists (a parquet's metadata, a text file's lines), else the fallback."""
    f = Path(path)
    if not f.exists():
        return fallback
    if f.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_metadata(f).num_rows
    return sum(1 for line in f.read_text().splitlines() if line.strip())


def model_job_resources(model: dict, job: dict, flops: float | None, attempt: int = 1) -> dict:
    """mem_mb, runtime (minutes), cpus_per_task, gpu and threads of one model job. Host memory
    holds the weights while they load (twice them on a CPU job, which also computes there) plus
    `host_memory_gb`. Wall time: the job's necessary FLOPs at `floor_fraction` of the job's rate
    (`gpu_tflops` per GPU, or `cpu_tflops`), times the model's `time_factor`, at least
    `min_runtime`; None FLOPs (no geometry yet): `min_runtime`. A retried job (attempt 2, 3,
    ...) gets that many times the memory and time."""
    model = with_defaults("models.*", model)
    n_gpus = gpus(model, job)
    weights_gb = params_b(model) * BYTES_PER_PARAM[model["dtype"]]
    host_gb = job["host_memory_gb"] + weights_gb * (1.1 if n_gpus else 2.0)
    runtime = job["min_runtime"]
    if flops is not None:
        rate = (job["gpu_tflops"] if n_gpus else job["cpu_tflops"]) * 1e12 * job["floor_fraction"]
        runtime = max(runtime, math.ceil(flops / rate / 60 * model["time_factor"]))
    cpus = n_gpus * job["cpus_per_gpu"] if n_gpus else 1
    return {
        "mem_mb": math.ceil(host_gb * 1024) * attempt,
        "runtime": runtime * attempt,
        "cpus_per_task": cpus,
        "gpu": n_gpus,
        "threads": cpus,
    }
