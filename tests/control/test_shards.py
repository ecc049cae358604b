"""control.shards: the shard writer, the index and their refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bidscore.errors import BidscoreError
from control.errors import ShardError
from control.shards import ShardInfo, read_index, read_shard, write_index, write_shard


def _csr(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    per_row = rng.integers(1, 4, rows)
    indptr = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64)
    nnz = int(indptr[-1])
    return {
        "indptr": indptr,
        "fields": rng.integers(0, 3, nnz),
        "indices": rng.integers(0, 1 << 10, nnz),
        "values": np.ones(nnz),
        "labels": (rng.random(rows) < 0.3).astype(np.float64),
    }


def test_write_and_read_round_trip(tmp_path: Path) -> None:
    a = _csr(5, 1)
    info = write_shard(tmp_path, "part-00000", **a, extra={"source": "x"})
    b = _csr(7, 2)
    w = np.full(7, 2.0)
    info_b = write_shard(tmp_path, "part-00001", **b, weights=w)
    assert info == ShardInfo("part-00000", 5, len(a["fields"]), float(a["labels"].sum()), 5.0)
    assert info_b.weight_sum == 14.0
    write_index(tmp_path, [info, info_b], fingerprint="ab" * 32, hash_bits=10, num_fields=3)
    index = read_index(tmp_path)
    assert index.rows == 12
    assert index.nnz == info.nnz + info_b.nnz
    assert index.label_sum == info.label_sum + info_b.label_sum
    assert index.weight_sum == 19.0
    assert index.shards == [info, info_b]
    assert index.paths() == [tmp_path / "part-00000", tmp_path / "part-00001"]
    assert (index.fingerprint, index.hash_bits, index.num_fields) == ("ab" * 32, 10, 3)
    raw = json.loads((tmp_path / "shards.json").read_text())
    assert (raw["format"], raw["version"]) == ("bidscore-shards", 1)
    arrays = read_shard(tmp_path / "part-00000")
    assert [arrays[k].dtype for k in ("indptr", "fields", "values")] == [
        np.uint64,
        np.uint32,
        np.float32,
    ]
    assert "weights" not in arrays
    np.testing.assert_array_equal(arrays["indices"], a["indices"])
    assert read_shard(tmp_path / "part-00001", mmap=True)["weights"].sum() == 14.0
    # No temporary directories are left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00000", "part-00001", "shards.json"]


def test_refuses_overwrite_and_bad_shapes(tmp_path: Path) -> None:
    a = _csr(3)
    write_shard(tmp_path, "p0", **a)
    with pytest.raises(ShardError, match="exists already"):
        write_shard(tmp_path, "p0", **a)
    with pytest.raises(ShardError, match="indptr"):
        write_shard(tmp_path, "p1", **(a | {"labels": np.zeros(4)}))
    with pytest.raises(ShardError, match="invalid shard name"):
        write_shard(tmp_path, "../x", **a)
    assert not (tmp_path / "p1").exists()


def test_missing_corrupt_and_other_version_index(tmp_path: Path) -> None:
    with pytest.raises(BidscoreError, match=r"shards\.json is missing"):
        read_index(tmp_path)
    info = write_shard(tmp_path, "p0", **_csr(3))
    write_index(tmp_path, [info], fingerprint="", hash_bits=10, num_fields=3)
    index_path = tmp_path / "shards.json"
    good = index_path.read_text()
    index_path.write_text(good[:40])
    with pytest.raises(ShardError, match="corrupt"):
        read_index(tmp_path)
    index_path.write_text(good.replace('"version": 1', '"version": 2'))
    with pytest.raises(ShardError, match="version 2"):
        read_index(tmp_path)
    index_path.write_text(good)
    (tmp_path / "p0" / "values.npy").write_bytes(b"garbage")
    with pytest.raises(ShardError, match=r"values\.npy is corrupt"):
        read_shard(tmp_path / "p0")
    shutil.rmtree(tmp_path / "p0")
    with pytest.raises(ShardError, match=r"p0 listed in .* is missing"):
        read_index(tmp_path)
