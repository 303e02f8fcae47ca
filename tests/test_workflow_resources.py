"""vlmloc.workflow.resources: what a model job asks for, from the model's size and its FLOPs
(the pure logic behind resources.smk's model-job resources; no Snakemake needed)."""

import json
import struct

import pytest

from vlmloc.workflow import resources as r

JOB = {
    "gpu_memory_gb": 80,
    "gpu_headroom_gb": 16,
    "cpus_per_gpu": 4,
    "host_memory_gb": 4,
    "gpu_tflops": 989,
    "cpu_tflops": 0.05,
    "floor_fraction": 0.1,
    "min_runtime": 15,
}
LLAVA_7B = {"params_b": 7.06, "dtype": "bfloat16", "device": "auto"}


def test_a_job_never_asks_for_more_than_one_gpu():
    """The loader puts a model on one device, so a second GPU would sit idle: every GPU job asks
    for one, and a model that does not fit one GPU is a config error naming the keys."""
    assert r.gpus(LLAVA_7B, JOB) == 1  # 14.1 GB + 16 GB on an 80 GB GPU
    llava_13b_on_40 = ({**LLAVA_7B, "params_b": 13.35}, {**JOB, "gpu_memory_gb": 40})
    assert r.gpus(*llava_13b_on_40) == 1 and r.too_big_for_one_gpu(*llava_13b_on_40) is not None
    why = r.too_big_for_one_gpu(*llava_13b_on_40)  # 26.7 + 16 > 40
    assert "26.7 GB of bfloat16 weights" in why and "job_resources.gpu_memory_gb = 40" in why
    assert r.too_big_for_one_gpu({**LLAVA_7B, "params_b": 13.35}, JOB) is None  # 42.7 <= 80
    assert r.too_big_for_one_gpu({**LLAVA_7B, "dtype": "float32", "params_b": 20}, JOB)
    assert r.gpus({**LLAVA_7B, "gpus": 0}, JOB) == 0  # the toys: set by hand, jobs side by side
    assert r.gpus({**LLAVA_7B, "device": "cpu"}, JOB) == 0
    assert r.gpus({"tiny": {"seed": 0}, "dtype": "float32"}, JOB) == 0
    assert r.too_big_for_one_gpu({**LLAVA_7B, "gpus": 0, "params_b": 100}, JOB) is None


def test_memory_time_and_cpus_of_a_gpu_job():
    flops = 989e12 * 0.1 * 60 * 100  # 100 minutes at a tenth of the peak
    out = r.model_job_resources(LLAVA_7B, JOB, flops)
    assert out == {
        "mem_mb": int(-(-(4 + 7.06 * 2 * 1.1) * 1024 // 1)),
        "runtime": 100,
        "cpus_per_task": 4,
        "gpu": 1,
        "threads": 4,
    }
    assert r.model_job_resources({**LLAVA_7B, "time_factor": 2}, JOB, flops)["runtime"] == 200
    assert r.model_job_resources(LLAVA_7B, {**JOB, "floor_fraction": 0.2}, flops)["runtime"] == 50
    assert (
        r.model_job_resources(LLAVA_7B, JOB, flops / 100)["runtime"] == 15
    )  # the floor: min_runtime
    assert r.model_job_resources(LLAVA_7B, JOB, None)["runtime"] == 15  # no geometry yet
    retry = r.model_job_resources(LLAVA_7B, JOB, flops, attempt=2)
    assert retry["runtime"] == 200 and retry["mem_mb"] == 2 * out["mem_mb"]


def test_a_cpu_job_takes_one_core_and_twice_the_weights():
    toy = {"params_b": 0.002, "dtype": "float32", "gpus": 0}
    out = r.model_job_resources(
        toy, JOB, 0.05e12 * 0.1 * 60 * 30
    )  # 30 minutes at a tenth of a core
    assert out["gpu"] == 0 and out["cpus_per_task"] == out["threads"] == 1 and out["runtime"] == 30
    assert out["mem_mb"] == int(-(-(4 + 0.002 * 4 * 2.0) * 1024 // 1))


def test_parameters_counted_from_safetensors_headers(tmp_path):
    header = {
        "a": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
        "b": {"dtype": "F32", "shape": [5], "data_offsets": [48, 68]},
        "__metadata__": {"format": "pt"},
    }
    raw = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(68))
    assert r.safetensors_params(tmp_path) == 17
    assert r.params_b({"path": str(tmp_path)}) == pytest.approx(17e-9)
    assert r.params_b({"params_b": 7.06, "path": str(tmp_path)}) == 7.06  # given beats counted


def test_expected_count_reads_a_file_once_it_exists(tmp_path):
    ids = tmp_path / "ids.txt"
    assert r.expected_count(ids, 2248) == 2248
    ids.write_text("a\nb\n\nc\n")
    assert r.expected_count(ids, 2248) == 3
