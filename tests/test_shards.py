"""Shards everywhere: the sharded mean embedding equals the unsharded one, gathers fail on a
missing or twice-gathered sample, and a shard whose job is killed mid-run reruns alone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT, run_snakemake

from vlmloc.data.image_sets import images_in_image_set
from vlmloc.gather import check_gathered
from vlmloc.interventions import visual_embedding_stats
from vlmloc.mean_embedding import combine_embedding_sums, embedding_sums, shard_indices


def _images(n=7, seed=3):
    return images_in_image_set(
        {"images": "generated", "n_images": n, "seed": seed}, {"long_side": [120, 240]}
    )


def _plain_stats(adapter, images) -> dict:
    """The statistics the plain way: every token's embedding at once, its mean, its norms' mean and std."""
    with torch.inference_mode():
        pixels = torch.cat([adapter.pixel_values(im) for im in images])
        feats = adapter.image_features(pixels.to(adapter.device, adapter.model.dtype)).float()
    norms = feats.norm(dim=-1).double()
    return {
        "mean": feats.mean(0),
        "norm_mean": float(norms.mean()),
        "norm_std": float(norms.std()),
        "n_tokens": len(feats),
    }


@pytest.mark.parametrize("family", ["llava", "internvl"])
def test_sharded_mean_embedding_equals_unsharded(adapters, family):
    a, images = adapters[family], _images()
    ref = _plain_stats(a, images)
    whole = visual_embedding_stats(a, images, batch_size=3)  # the library's unsharded call
    assert whole["n_images"] == 7 and whole["n_tokens"] == ref["n_tokens"]
    torch.testing.assert_close(whole["mean"], ref["mean"], rtol=1e-5, atol=1e-6)
    assert whole["norm_std"] == pytest.approx(ref["norm_std"], rel=1e-6)
    results = {}
    for shards in (1, 2, 3):
        parts = [
            embedding_sums(a, images, shard_indices(len(images), k, shards), batch_size=2)
            for k in range(shards)
        ]
        results[shards] = out = combine_embedding_sums(parts[::-1])  # any order of shards
        assert out["n_images"] == 7 and out["n_tokens"] == ref["n_tokens"]
        torch.testing.assert_close(out["mean"], ref["mean"], rtol=1e-5, atol=1e-6)
        assert out["norm_mean"] == pytest.approx(ref["norm_mean"], rel=1e-9)
        assert out["norm_std"] == pytest.approx(ref["norm_std"], rel=1e-6)
    assert ref["norm_std"] > 0 and ref["mean"].abs().sum() > 0
    torch.testing.assert_close(results[3]["mean"], results[1]["mean"], rtol=1e-6, atol=1e-7)


def test_mean_embedding_gather_fails_on_missing_or_twice_summed_images(adapters):
    a, images = adapters["llava"], _images(5)
    parts = [embedding_sums(a, images, shard_indices(5, k, 2), batch_size=4) for k in range(2)]
    assert parts[0]["indices"] == [0, 2, 4] and parts[1]["indices"] == [1, 3]
    with pytest.raises(ValueError, match="missing"):
        combine_embedding_sums(parts[:1])
    with pytest.raises(ValueError, match="more than once"):
        combine_embedding_sums([parts[0], parts[1], parts[1]])
    other = embedding_sums(a, _images(6), [5], batch_size=4)
    with pytest.raises(ValueError, match="different sizes"):
        combine_embedding_sums([*parts, other])
    with pytest.raises(ValueError, match="shard 2 outside"):
        shard_indices(5, 2, 2)


def test_check_gathered_names_the_problem():
    check_gathered(["b", "a", "c"], ["a", "b", "c"], "samples")
    with pytest.raises(ValueError, match=r"samples: 1 gathered more than once, e.g. \['a'\]"):
        check_gathered(["a", "a", "b", "c"], ["a", "b", "c"], "samples")
    with pytest.raises(ValueError, match=r"samples: 1 missing, e.g. \['c'\]"):
        check_gathered(["a", "b"], ["a", "b", "c"], "samples")
    with pytest.raises(ValueError, match=r"samples: 1 not expected, e.g. \['z'\]"):
        check_gathered(["a", "b", "c", "z"], ["a", "b", "c"], "samples")


# ---- through Snakemake --------------------------------------------------------------------------
SMALL = (ROOT / ".test/shards.yaml").read_text()  # also a config users can run
ANSWERS = "results/shapes/screening/tiny_llava/answers.parquet"
MEAN = "results/mean_embedding/tiny_llava.pt"


def jobs_run(text: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a Snakemake run started."""
    out = []
    for block in re.split(r"\n(?=\[\w{3} \w{3} )", text):
        m = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):", block, re.M)
        if m:
            w = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            out.append((m[1], w[1] if w else ""))
    return out


def process_with_open_file(path: Path) -> int | None:
    """The pid of a process that holds ``path`` open (a rule script writes its log while it runs)."""
    target = str(path.resolve())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return int(pid)
            except OSError:
                pass
    return None


@pytest.mark.slow  # a real workflow run, killed and rerun
def test_a_killed_shard_reruns_alone(workflow_dir):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to find the shard's process")
    (workflow_dir / "small.yaml").write_text(SMALL)
    shard = lambda k: workflow_dir / f"results/shapes/screening/tiny_llava/shard-{k}.parquet"  # noqa: E731
    log = lambda k: workflow_dir / f"logs/screen/shapes/tiny_llava/shard-{k}.log"  # noqa: E731
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        ANSWERS,
        MEAN,
        "--cores",
        "2",
        "--keep-going",
        "--configfile",
        "small.yaml",
    ]
    proc = subprocess.Popen(
        cmd, cwd=workflow_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    # once one screening shard is done, SIGKILL the job of another while it runs
    killed, deadline = None, time.monotonic() + 240
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        if any(shard(k).exists() for k in range(3)):
            for k in range(3):
                pid = None if shard(k).exists() else process_with_open_file(log(k))
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    killed = k
                    break
        time.sleep(0.02)
    first = proc.communicate(timeout=240)[0]
    assert killed is not None, "no shard was caught running:\n" + first[-3000:]
    assert proc.returncode != 0 and f"shard={killed}" in first
    done = [k for k in range(3) if shard(k).exists()]
    assert killed not in done and len(done) == 2, done  # --keep-going finished the other two

    # the rerun runs the killed shard and the gather, nothing else
    rerun = run_snakemake(workflow_dir, ANSWERS, MEAN, "--configfile", "small.yaml")
    ran = jobs_run(rerun.stdout + rerun.stderr)
    assert sorted(ran) == [
        ("gather_screening", "dataset=shapes, model=tiny_llava"),
        ("screen_shard", f"dataset=shapes, model=tiny_llava, shard={killed}"),
    ], ran
    answers = pd.read_parquet(workflow_dir / ANSWERS)
    samples = pd.read_parquet(workflow_dir / "results/shapes/samples.parquet")
    assert (
        sorted(set(answers["sample_id"])) == sorted(samples["sample_id"])
        and len(answers) == len(samples) * 6
    )

    # the mean embedding gathered from 2 shards equals the unsharded computation
    from vlmloc.models import load_adapter

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    spec = {
        k: cfg["datasets"]["shapes"][k]
        for k in ("colours", "shapes", "long_side", "aspect", "min_objects", "max_objects")
    }
    images = images_in_image_set(
        {"images": "generated", "n_images": 6, "seed": cfg["mean_embedding"]["seed"]}, spec
    )
    adapter = load_adapter(
        "llava", workflow_dir / "resources/models/tiny_llava", dtype="float32", device="cpu"
    )
    ref = visual_embedding_stats(adapter, images, batch_size=16)
    gathered = torch.load(workflow_dir / MEAN, weights_only=True)
    assert gathered["n_images"] == 6 and gathered["n_tokens"] == ref["n_tokens"]
    torch.testing.assert_close(gathered["mean"], ref["mean"], rtol=1e-5, atol=1e-6)
    assert gathered["norm_std"] == pytest.approx(ref["norm_std"], rel=1e-6)

    # a shard written twice (here: shard 0's rows in shard 1's file) fails the gather
    other = (killed + 1) % 3
    shard(other).write_bytes(shard(killed).read_bytes())
    failed = run_snakemake(
        workflow_dir, ANSWERS, "--configfile", "small.yaml", "--force", check=False
    )
    assert failed.returncode != 0
    assert (
        "repeat a (condition, task, sample)"
        in (workflow_dir / "logs/gather_screening/shapes/tiny_llava.log").read_text()
    )
