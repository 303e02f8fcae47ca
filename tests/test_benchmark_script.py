"""scripts/benchmark.py runs (so that it cannot rot): one experiment on a tiny model with the real
token geometry (about 6 s), its fast path equal to the naive reference, and a table row whose
numbers parse."""

import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.parametrize("experiment", ["containerization", "mediation", "probes"])
def test_the_benchmark_runs_one_experiment(experiment):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "benchmark.py"),
            "--experiment",
            experiment,
            "--family",
            "llava",
            "--n",
            "1",
            "--hidden",
            "64",
            "--layers",
            "1",
            "--head-dim",
            "16",
            "--mlp",
            "2",
            "--vision-hidden",
            "32",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [r for r in out.stdout.splitlines() if r.startswith(f"| {experiment} | llava |")]
    assert rows, out.stdout[-3000:]
    cells = [c.strip() for c in rows[-1].strip("|").split("|")]
    naive_s, fast_s, ratio = float(cells[3]), float(cells[4]), cells[5]
    assert naive_s >= 0 and fast_s >= 0 and ratio.startswith("×")  # seconds, 1 decimal
    same = cells[6]
    agree = {"mediation": "nll max diff", "probes": "accuracy max diff 0.0"}  # else: same answers
    assert same.startswith(agree.get(experiment, "100%")), same
    floor = float(cells[9])
    assert 0 < floor < 2  # a fraction of the measured matrix-multiply rate
