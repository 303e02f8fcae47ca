"""Damaged upstream files: named, deleted so that a rerun rebuilds them; good ones untouched."""

import errno

import pandas as pd
import pytest
import torch

from vlmloc.gather import DamagedUpstreamError, read_upstream


def _shards(tmp_path, n=3):
    paths = []
    for k in range(n):
        p = tmp_path / f"shard-{k}.parquet"
        pd.DataFrame({"sample_id": [f"s{k}_{i}" for i in range(50)], "x": range(50)}).to_parquet(p)
        paths.append(p)
    return paths


def test_good_shards_are_read_in_order(tmp_path):
    paths = _shards(tmp_path)
    frames = read_upstream(paths)
    assert [f["sample_id"].iloc[0] for f in frames] == ["s0_0", "s1_0", "s2_0"]
    assert all(p.exists() for p in paths)


def test_damaged_shards_are_all_named_and_deleted_and_the_others_kept(tmp_path):
    paths = _shards(tmp_path, 4)
    good = {p: p.read_bytes() for p in paths}
    paths[1].write_bytes(good[paths[1]][: len(good[paths[1]]) // 2])  # a copy cut short
    paths[3].write_bytes(b"")  # an empty file
    with pytest.raises(DamagedUpstreamError) as e:
        read_upstream(paths)
    msg = str(e.value)
    assert msg.startswith("2 upstream file(s) cannot be read and have been DELETED; run the ")
    assert f"{paths[1]}: ArrowInvalid" in msg and f"{paths[3]}: ArrowInvalid" in msg
    assert str(paths[0]) not in msg
    assert not paths[1].exists() and not paths[3].exists()
    assert paths[0].read_bytes() == good[paths[0]] and paths[2].read_bytes() == good[paths[2]]


def test_a_damaged_torch_file_is_deleted_too(tmp_path):
    p = tmp_path / "sums.pt"
    torch.save({"n": torch.zeros(100)}, p)
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DamagedUpstreamError, match="sums.pt: RuntimeError"):
        read_upstream([p], lambda f: torch.load(f, weights_only=True))
    assert not p.exists()


def test_missing_files_and_file_system_errors_are_not_damage(tmp_path):
    paths = _shards(tmp_path, 2)
    with pytest.raises(FileNotFoundError):
        read_upstream([paths[0], tmp_path / "gone.parquet"])

    def flaky(path):
        raise OSError(errno.EIO, "Input/output error", str(path))

    with pytest.raises(OSError, match="Input/output error"):
        read_upstream(paths, flaky)
    assert all(p.exists() for p in paths)
