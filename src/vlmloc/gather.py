"""The guard of every gather step: the shards together hold each expected item exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


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
