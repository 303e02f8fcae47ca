"""Checksummed, resumable, retrying downloads that never leave a file a rerun would trust.

Bytes go to ``<dest>.part``; only a file whose md5 matches is renamed to ``dest`` (atomic on one
filesystem). A checksum mismatch deletes the partial file, so the next attempt starts clean.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    pass


def md5sum(path: str | Path, chunk: int = CHUNK) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _transfer(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part``, asking for a byte range when part is non-empty."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "vlmloc"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        status = getattr(resp, "status", 200)
        if have and status != 206:  # server ignored the range: start over
            have = 0
        total = resp.headers.get("Content-Length")
        expected = have + int(total) if total is not None else None
        with open(part, "ab" if have else "wb") as out:
            while block := resp.read(CHUNK):
                out.write(block)
    got = part.stat().st_size
    if expected is not None and got != expected:
        raise urllib.error.URLError(f"connection closed early: {got} of {expected} bytes")


def fetch(
    url: str,
    dest: str | Path,
    md5: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    backoff: float = 1.0,
) -> str:
    """Download ``url`` to ``dest`` and return its md5.

    Transient errors (connection resets, short reads, 5xx) are retried ``retries`` times, resuming
    from the bytes already written. With ``md5`` given, a mismatch raises ChecksumError and leaves
    neither ``dest`` nor the partial file behind. Without it, the computed md5 is returned so the
    caller can record it (trust on first download).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout)
            break
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code != 416:
                part.unlink(missing_ok=True)
                raise
            if e.code == 416:  # range not satisfiable: our partial file is bad, restart
                part.unlink(missing_ok=True)
            last_error = e
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            last_error = e
        log.warning(
            "download %s failed (attempt %d/%d): %s", url, attempt + 1, retries + 1, last_error
        )
        time.sleep(backoff * (2**attempt))
    else:
        part.unlink(missing_ok=True)
        raise RuntimeError(f"download of {url} failed after {retries + 1} attempts: {last_error}")

    digest = md5sum(part)
    if md5 is not None and digest != md5.lower():
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{url}: md5 {digest} does not match the expected {md5}; file removed")
    os.replace(part, dest)
    return digest
