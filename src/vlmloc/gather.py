"""The guards of every gather step: each upstream file is readable (a damaged one is deleted so
that a rerun rebuilds it), and the shards together hold each expected item exactly once."""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path


def check_gathered(found: Iterable, expected: Iterable, what: str) -> None:
    """Raise ``ValueError`` when an item of ``expected`` is missing from ``found``, appears in it
    more than once (a shard written twice, or shards of two different shard counts), or when
    ``found`` holds an item that is not expected. ``what`` names the items in the message."""
    counts = Counter(found)
    expected = set(expected)
    twice = sorted(k for k, n in counts.items() if n > 1)
    if twice:
        raise ValueError(
            f"{what}: {len(twice)} gathered more than once, e.g. {twice[:3]} (a shard written twice?)"
        )
    missing = sorted(expected - counts.keys())
    if missing:
        raise ValueError(f"{what}: {len(missing)} missing, e.g. {missing[:3]} (a shard lost?)")
    extra = sorted(counts.keys() - expected)
    if extra:
        raise ValueError(f"{what}: {len(extra)} not expected, e.g. {extra[:3]}")


class DamagedUpstreamError(RuntimeError):
    """Upstream files that exist but cannot be read; they have been deleted (see ``read_upstream``)."""


def _is_damage(error: BaseException) -> bool:
    """A reader's error that says the file's bytes are bad (truncated, corrupt, not the format),
    not that the file system failed (a missing file, permissions, an I/O error with an errno)."""
    if isinstance(error, OSError):
        return error.errno is None and not isinstance(error, FileNotFoundError)
    return isinstance(error, (ValueError, EOFError, RuntimeError, pickle.UnpicklingError))


def read_upstream(paths: Iterable, reader: Callable | None = None) -> list:
    """``reader(path)`` for every path (default: ``pandas.read_parquet``).

    A file that exists but cannot be read (a job killed while copying it, a full disk, a bad copy)
    would fail every rerun: Snakemake sees it present and newer than nothing. So every such file is
    DELETED, and one ``DamagedUpstreamError`` names them all and the reader's error for each: the
    next run rebuilds exactly those files (their jobs' outputs are missing) and this step. Missing
    files and file-system errors are raised as they are: the file may be fine."""
    if reader is None:
        import pandas as pd

        reader = pd.read_parquet
    out, damaged = [], []
    for path in paths:
        try:
            out.append(reader(path))
        except Exception as e:
            if not _is_damage(e):
                raise
            damaged.append((Path(path), e))
    if damaged:
        for path, _ in damaged:
            path.unlink(missing_ok=True)
        lines = "\n  ".join(f"{p}: {type(e).__name__}: {e}" for p, e in damaged)
        raise DamagedUpstreamError(
            f"{len(damaged)} upstream file(s) cannot be read and have been DELETED; run the "
            f"workflow again and it rebuilds them (their jobs rerun, nothing else):\n  {lines}"
        )
    return out
