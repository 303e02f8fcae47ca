import hashlib
import urllib.error

import pytest

from vlmloc.data.download import ChecksumError, fetch


def _serve(server, name, data: bytes) -> str:
    (server.root / name).write_bytes(data)
    return hashlib.md5(data).hexdigest()


def test_fetch_verifies_checksum(http_server, tmp_path):
    md5 = _serve(http_server, "a.zip", b"x" * 5000)
    dest = tmp_path / "out" / "a.zip"
    assert fetch(f"{http_server.url}/a.zip", dest, md5=md5) == md5
    assert dest.read_bytes() == b"x" * 5000
    assert not (tmp_path / "out" / "a.zip.part").exists()


def test_corrupt_download_leaves_no_file(http_server, tmp_path):
    _serve(http_server, "a.zip", b"corrupted bytes")
    dest = tmp_path / "a.zip"
    with pytest.raises(ChecksumError, match="does not match"):
        fetch(f"{http_server.url}/a.zip", dest, md5="0" * 32, backoff=0)
    assert list(tmp_path.iterdir()) == [http_server.root]  # neither a.zip nor a.zip.part


def test_dropped_connection_resumes_with_range(http_server, tmp_path):
    data = bytes(range(256)) * 400
    md5 = _serve(http_server, "big.tar", data)
    http_server.truncate["/big.tar"] = 1  # first request is cut off halfway
    dest = tmp_path / "big.tar"
    assert fetch(f"{http_server.url}/big.tar", dest, md5=md5, backoff=0) == md5
    assert dest.read_bytes() == data
    ranges = [r for p, r in http_server.requests if p == "/big.tar"]
    assert ranges[0] is None and ranges[1] == f"bytes={len(data) // 2}-"


def test_truncated_every_time_fails_cleanly(http_server, tmp_path):
    md5 = _serve(http_server, "t.zip", b"y" * 4096)
    http_server.truncate["/t.zip"] = 99
    dest = tmp_path / "t.zip"
    with pytest.raises(RuntimeError, match="failed after 3 attempts"):
        fetch(f"{http_server.url}/t.zip", dest, md5=md5, retries=2, backoff=0)
    assert not dest.exists() and not (tmp_path / "t.zip.part").exists()


def test_missing_file_is_not_retried(http_server, tmp_path):
    with pytest.raises(urllib.error.HTTPError):
        fetch(f"{http_server.url}/nope.zip", tmp_path / "nope.zip", backoff=0)
    assert len(http_server.requests) == 1
    assert not (tmp_path / "nope.zip").exists()


def test_without_md5_returns_digest_to_record(http_server, tmp_path):
    md5 = _serve(http_server, "r.json.zip", b"rem")
    assert fetch(f"{http_server.url}/r.json.zip", tmp_path / "r.json.zip") == md5
