"""rust_core.ShardedDataset: out-of-core training from CSR shards (control.shards format)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import rust_core
from control.metrics import evaluate
from control.shards import ShardInfo, write_index, write_shard

FIELDS = 8
VOCAB = 30


def planted(rows: int, seed: int) -> dict[str, np.ndarray]:
    """CSR arrays of rows labelled by a planted logistic model (one feature per field)."""
    rng = np.random.default_rng(seed)
    truth = np.random.default_rng(1000).uniform(-1, 1, FIELDS * VOCAB)
    idx = (rng.random((rows, FIELDS)) ** 2 * VOCAB).astype(np.int64) + np.arange(FIELDS) * VOCAB
    p = 1 / (1 + np.exp(-(-1.0 + truth[idx].sum(axis=1))))
    return {
        "indptr": np.arange(0, rows * FIELDS + 1, FIELDS, dtype=np.uint64),
        "fields": np.tile(np.arange(FIELDS, dtype=np.uint32), rows),
        "indices": idx.astype(np.uint32).ravel(),
        "values": np.ones(rows * FIELDS, dtype=np.float32),
        "labels": (rng.random(rows) < p).astype(np.float32),
    }


def dataset(a: dict[str, np.ndarray]) -> rust_core.Dataset:
    return rust_core.Dataset.from_csr(
        a["indptr"].copy(),
        a["fields"].copy(),
        a["indices"].copy(),
        a["values"].copy(),
        a["labels"].copy(),
    )


def write_shards(root: Path, a: dict[str, np.ndarray], rows_per_shard: int) -> list[ShardInfo]:
    """`a` split into shards of `rows_per_shard` rows under `root`, with an index."""
    n = len(a["labels"])
    infos = []
    for i, start in enumerate(range(0, n, rows_per_shard)):
        end = min(start + rows_per_shard, n)
        lo, hi = int(a["indptr"][start]), int(a["indptr"][end])
        infos.append(
            write_shard(
                root,
                f"part-{i:05d}",
                indptr=a["indptr"][start : end + 1] - lo,
                fields=a["fields"][lo:hi],
                indices=a["indices"][lo:hi],
                values=a["values"][lo:hi],
                labels=a["labels"][start:end],
            )
        )
    write_index(root, infos, fingerprint="", hash_bits=10, num_fields=FIELDS)
    return infos


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, np.ndarray], Path]:
    a = planted(20_000, 3)
    root = tmp_path_factory.mktemp("shards") / "train"
    # 7 uneven shards: state carries across shard boundaries mid-epoch.
    write_shards(root, a, 3_000)
    return a, root


def test_opens_a_root_or_a_list_of_shards(data: tuple[dict[str, np.ndarray], Path]) -> None:
    a, root = data
    ds = rust_core.ShardedDataset(root)
    assert (ds.num_rows, ds.nnz, ds.num_shards) == (20_000, 20_000 * FIELDS, 7)
    assert (ds.num_fields, ds.num_features) == (FIELDS, int(a["indices"].max()) + 1)
    assert ds.label_sum == pytest.approx(float(a["labels"].sum()))
    assert ds.weight_sum == 20_000
    assert ds.prefetch == 2
    assert len(ds) == 20_000
    two = rust_core.ShardedDataset(ds.paths[:2], prefetch=1)
    assert (two.num_rows, two.prefetch) == (6_000, 1)


@pytest.mark.parametrize("algo", ["ffm", "lr"])
def test_fixed_order_single_thread_is_bit_identical_to_memory(
    data: tuple[dict[str, np.ndarray], Path], algo: str
) -> None:
    """shuffle=False: rows in stored order, shards in listed order; threads=1 then gives the
    in-memory model of the concatenated rows, checksum for checksum."""
    a, root = data
    train = rust_core.train_ffm if algo == "ffm" else rust_core.train_lr
    kw = {"epochs": 3, "shuffle": False, "threads": 1, "seed": 5, "bits": 10}
    in_memory = train(dataset(a), **kw)
    out_of_core = train(rust_core.ShardedDataset(root, prefetch=1), **kw)
    assert out_of_core.checksum == in_memory.checksum
    # Not a vacuous equality: another seed or shuffling changes the model.
    assert train(dataset(a), **(kw | {"shuffle": True})).checksum != in_memory.checksum


def test_shuffled_shards_learn_as_well_as_memory(
    data: tuple[dict[str, np.ndarray], Path],
) -> None:
    a, root = data
    test = planted(10_000, 99)
    test_set = dataset(test)
    losses = {}
    for name, train in (("memory", dataset(a)), ("disk", rust_core.ShardedDataset(root))):
        m = rust_core.train_ffm(train, epochs=4, eta=0.1, seed=1, bits=10)
        losses[name] = evaluate(test["labels"], m.predict(test_set)).logloss
    # Row order differs (per-shard shuffles); the learnt models agree within noise.
    assert losses["disk"] == pytest.approx(losses["memory"], abs=0.005), losses


def test_valid_set_and_progress_work_with_shards(
    data: tuple[dict[str, np.ndarray], Path],
) -> None:
    _, root = data
    valid = dataset(planted(2_000, 7))
    seen: list[tuple[int, float, float | None]] = []
    m = rust_core.train_lr(
        rust_core.ShardedDataset(root),
        valid,
        epochs=10,
        auto_stop=True,
        progress=lambda e, t, v: seen.append((e, t, v)),
    )
    assert seen
    assert all(v is not None for _, _, v in seen)
    assert m.best_epoch is not None


def test_missing_or_corrupt_shards_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(rust_core.DataError, match=r"shards\.json: missing"):
        rust_core.ShardedDataset(tmp_path)
    a = planted(1_000, 1)
    write_shards(tmp_path, a, 300)
    (tmp_path / "part-00002" / "indices.npy").write_bytes(b"\x93NUMPY\x01\x00")
    ds = rust_core.ShardedDataset(tmp_path)  # labels are fine: opening succeeds
    with pytest.raises(rust_core.DataError, match=r"part-00002.*indices\.npy"):
        rust_core.train_ffm(ds, epochs=1)
    (tmp_path / "part-00001" / "meta.json").unlink()
    with pytest.raises(rust_core.DataError, match="part-00001: shard is missing"):
        rust_core.ShardedDataset(tmp_path)
    index = json.loads((tmp_path / "shards.json").read_text())
    (tmp_path / "shards.json").write_text(json.dumps(index | {"version": 9}))
    with pytest.raises(rust_core.DataError, match="version 9"):
        rust_core.ShardedDataset(tmp_path)
    with pytest.raises(TypeError, match="Dataset or a ShardedDataset"):
        rust_core.train_lr([1, 2, 3])  # type: ignore[arg-type]


def test_warm_start_refuses_another_shape(data: tuple[dict[str, np.ndarray], Path]) -> None:
    a, _ = data
    ds = dataset(a)
    m = rust_core.train_ffm(ds, epochs=1, bits=10, k=4)
    with pytest.raises(rust_core.DataError, match="k = 4 where training uses k = 8"):
        rust_core.train_ffm(ds, epochs=1, bits=10, k=8, init=m)
    with pytest.raises(rust_core.DataError, match="algorithm ffm where lr is trained"):
        rust_core.train_lr(ds, epochs=1, bits=10, init=m)
    with pytest.raises(rust_core.DataError, match="fingerprint"):
        rust_core.train_ffm(ds, epochs=1, bits=10, fingerprint="ab" * 32, init=m)
    warm = rust_core.train_ffm(ds, epochs=1, bits=10, init=m)
    assert warm.checksum != m.checksum


# Peak RSS of a process that trains from shards larger than the cap. The data are 1M rows of
# 10 non-zeros (~130 MB of shards); the cap leaves the interpreter, numpy and the model room
# but not the data.
_CAP = 100 << 20
_RSS_SCRIPT = textwrap.dedent(
    """
    import sys
    import rust_core
    ds = rust_core.ShardedDataset(sys.argv[1], prefetch=1)
    m = rust_core.train_ffm(ds, epochs=1, bits=14, k=4, threads=1)
    status = open("/proc/self/status").read()
    peak = [l for l in status.splitlines() if l.startswith("VmHWM:")][0]
    print(int(peak.split()[1]) * 1024, ds.num_rows, m.checksum)
    """
)


def test_training_from_shards_larger_than_a_memory_cap_stays_under_it(tmp_path: Path) -> None:
    root = tmp_path / "big"
    infos = []
    rows, per_shard, nnz = 1_000_000, 50_000, 10
    rng = np.random.default_rng(0)
    for i in range(rows // per_shard):
        infos.append(
            write_shard(
                root,
                f"part-{i:05d}",
                indptr=np.arange(0, per_shard * nnz + 1, nnz, dtype=np.uint64),
                fields=np.tile(np.arange(nnz, dtype=np.uint32), per_shard),
                indices=rng.integers(0, 1 << 14, per_shard * nnz, dtype=np.uint32),
                values=np.ones(per_shard * nnz, dtype=np.float32),
                labels=(rng.random(per_shard) < 0.1).astype(np.float32),
            )
        )
    write_index(root, infos, fingerprint="", hash_bits=14, num_fields=nnz)
    on_disk = sum(f.stat().st_size for f in root.rglob("*.npy"))
    assert on_disk > 1.2 * _CAP
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(root)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    peak, trained_rows, _ = out.stdout.split()
    assert int(trained_rows) == rows
    assert int(peak) < _CAP, f"peak RSS {int(peak) >> 20} MiB, data {on_disk >> 20} MiB"
