from __future__ import annotations

import http.server
import os
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
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


def serve(root: Path) -> _Server:
    """A local HTTP server on 127.0.0.1 serving ``root`` (made here); ``stop`` it after."""
    root.mkdir(parents=True)
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.root, srv.truncate, srv.requests = root, {}, []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def stop(srv: _Server) -> None:
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``server.root`` (a temp folder)."""
    srv = serve(tmp_path / "served")
    yield srv
    stop(srv)


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


# --- the toy demo: the session's one workflow run of the trained toys -------------------------
# .test/toy_demo.yaml (the demo's shape at a smaller size, a config users can run) is run once per
# session; every module that needs a finished run reads it through the `toy_demo` fixture, and a
# test that changes a run works on `copy_run(toy_demo, ...)`. It starts in the background as soon
# as the collected tests are known to need it, so that it runs while the unit tests do.
TOY_DEMO = (ROOT / ".test/toy_demo.yaml").read_text()
_DEMO: dict = {}


def pytest_collection_finish(session):
    if session.config.option.collectonly or session.testsfailed:
        return
    if any("toy_demo" in getattr(item, "fixturenames", ()) for item in session.items):
        wf = copy_workflow(Path(tempfile.mkdtemp(prefix="vlmloc-toy-demo-")) / "wf")
        (wf / "toy.yaml").write_text(TOY_DEMO)
        log = open(wf.parent / "snakemake.log", "w")  # noqa: SIM115 (closed at the wait)
        cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "toy.yaml"]
        proc = subprocess.Popen(cmd, cwd=wf, stdout=log, stderr=log, start_new_session=True)
        _DEMO.update(wf=wf, log=log, proc=proc)
        # its jobs take the cores it is given: the tests beside it run torch on one thread (more
        # would spin against the jobs' threads), and get their threads back when it is done
        import torch

        _DEMO["threads"] = torch.get_num_threads()
        torch.set_num_threads(1)


def pytest_runtest_setup(item):
    if "threads" in _DEMO and _DEMO["proc"].poll() is not None:
        import torch

        torch.set_num_threads(_DEMO.pop("threads"))


def pytest_sessionfinish(session, exitstatus):
    proc = _DEMO.get("proc")
    if proc is None:
        return
    interrupted = proc.poll() is None
    if interrupted:  # leave no workflow running
        os.killpg(proc.pid, signal.SIGTERM)  # Snakemake and the jobs it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if interrupted or proc.returncode == 0:  # kept only when the run itself failed
        shutil.rmtree(_DEMO["wf"].parent, ignore_errors=True)


@pytest.fixture(scope="session")
def toy_demo() -> Path:
    """The workflow copied and run on TOY_DEMO (started at collection): its folder."""
    proc = _DEMO["proc"]
    proc.wait()
    _DEMO["log"].close()
    if proc.returncode != 0:
        log = _DEMO["wf"].parent / "snakemake.log"
        pytest.fail(
            f"the toy demo's run failed ({proc.returncode}; the run is kept in {log.parent}):\n"
            + log.read_text()[-8000:]
        )
    return _DEMO["wf"]


def copy_run(wf: Path, dest: Path) -> Path:
    """A copy of a finished workflow run, results, logs and Snakemake's records with their
    times, for a test that changes it: what the original planned, the copy plans."""
    shutil.copytree(wf, dest, symlinks=True)
    return dest
