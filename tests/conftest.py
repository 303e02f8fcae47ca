from __future__ import annotations

import http.server
import shutil
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = (
    "Snakefile",
    "config.yaml",
    "config",
    "workflow",
    "profiles",
    "envs",
    "checkpoints",
    "src",
)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``server.root`` with byte ranges; ``server.truncate`` maps a path to a
    number of requests that are cut off halfway (simulated dropped connections)."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv = self.server
        path = srv.root / self.path.lstrip("/")
        srv.requests.append((self.path, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        left = srv.truncate.get(self.path, 0)
        if left:
            srv.truncate[self.path] = left - 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``server.root`` (a temp folder)."""
    root = tmp_path / "served"
    root.mkdir()
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.root, srv.truncate, srv.requests = root, {}, []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow (not results/) in ``dest``, to run Snakemake in."""
    dest.mkdir()
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture
def workflow_dir(tmp_path):
    return copy_workflow(tmp_path / "wf")


def uncompressed_rle(mask) -> dict:
    """Column-major run lengths starting with zeros, as COCO-ReM writes its masks."""
    import numpy as np

    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:  # RLE starts with a run of zeros
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """Tiny random-weight checkpoints of both families, saved like hub snapshots."""
    from vlmloc.models.tiny import BUILDERS

    root = tmp_path_factory.mktemp("tiny_models")
    return {family: build(root / family, seed=0) for family, build in BUILDERS.items()}


@pytest.fixture(scope="session")
def adapters(tiny_dirs):
    from vlmloc.models import load_adapter

    return {
        family: load_adapter(family, path, dtype="float32", device="cpu")
        for family, path in tiny_dirs.items()
    }
