"""Data preparation: every input file of a training window read, tokenised and written as one
CSR shard (control.shards) by its own task, with the same feature plan training uses.

Each file (a `part-*.parquet` of a `dt=` partition, local or `s3://`, or a file named on the
command line) becomes `part-NNNNN`, numbered in the order `features.readers.read_logs` reads
the files; the shards concatenated in index order are therefore exactly the rows, in the
order, that the in-memory path tokenises from one table. Training splits and downsamples on
the driver with the same seeded masks over that order, so a model trained from prepared
shards equals the in-memory one bit for bit (threads=1).

Tasks write their shard under `prepared/RUN/` in the artifact store (a file store: straight
into its directory; S3: through a local temporary directory, then one object per array) and
return what the driver needs: the shard's `ShardInfo`, the data profile of its rows
(`control.profile`, merged on the driver), the downsampling rate recorded in the file, and
its time span. On the Ray executor each file is a Ray task (one CPU); locally the same
function runs in this process, one file after another.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.compute as pc

from control.errors import TrainingInputError
from control.profile import merge_profiles, profile_table, spec_features
from control.shards import (
    INDEX_NAME,
    ShardIndex,
    ShardInfo,
    read_index,
    read_shard,
    write_index,
    write_shard,
)

PREPARED_PREFIX = "prepared"
_DT = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})(?:/|$)")
_ARRAY_FILES = (
    "indptr.npy",
    "fields.npy",
    "indices.npy",
    "values.npy",
    "labels.npy",
    "weights.npy",
    "meta.json",
)

Notify = Callable[[str], None]


def shard_name(i: int) -> str:
    return f"part-{i:05d}"


def local_root(store: Any, prefix: str) -> Path | None:
    """The directory of `prefix` when the store is a local directory, else None."""
    from bidscore.store.base import check_key  # noqa: PLC0415
    from bidscore.store.file import FileStore  # noqa: PLC0415

    return store.root / check_key(prefix) if isinstance(store, FileStore) else None


def partition_day(source: str) -> str | None:
    """The day of the `dt=YYYY-MM-DD` partition a file belongs to, or None."""
    found = _DT.search(source)
    return found.group(1) if found else None


def prepare_file(
    source: str,
    *,
    name: str,
    store_url: str,
    prefix: str,
    model: str,
    specs: str | None,
    write: bool = True,
) -> dict[str, Any]:
    """Read one log file, keep the model's target rows, tokenise them with the model's
    plan and write them as shard `name` under `prefix` in the store (`write=False`: only
    the statistics, for holdout days). Returns JSON-ready data: `info` (ShardInfo, None
    without `write`), `profile` (of the target rows), `counts` (what retraining's
    validation needs from the file: `control.retrain.validate.day_counts`), `day` (its
    `dt=` partition, or None), `rate` (recorded downsampling rate or None), `weighted`,
    `ts` ([min, max] or None), `source`, `cpu_seconds`."""
    # Imported in the task: a Ray worker starts from a bare interpreter.
    from bidscore.store import open_store  # noqa: PLC0415
    from control.retrain.validate import day_counts  # noqa: PLC0415
    from features.catalog import load  # noqa: PLC0415
    from features.readers import read_logs  # noqa: PLC0415
    from features.readers.cast import DOWNSAMPLE_RATE_KEY, WEIGHT_COLUMN  # noqa: PLC0415
    from features.tokenize import table_csr  # noqa: PLC0415

    started = time.process_time()
    catalog = load(specs)
    spec, target = catalog.spec(model), catalog.target(model)
    labels = [target.label] + ([target.where] if target.where else [])
    table = read_logs(source, required_labels=labels)
    raw_rate = (table.schema.metadata or {}).get(DOWNSAMPLE_RATE_KEY)
    logged = table
    if target.where is not None:
        table = table.filter(pc.equal(table[target.where], 1))
    counts = day_counts(logged, target.label, table)
    del logged
    weighted = WEIGHT_COLUMN in table.column_names
    profile = profile_table(table, spec_features(spec))
    ts = None
    if "ts" in table.column_names and table["ts"].null_count < table.num_rows:
        bounds = pc.min_max(table["ts"]).as_py()
        ts = [int(bounds["min"]), int(bounds["max"])]
    result: dict[str, Any] = {
        "info": None,
        "profile": profile,
        "counts": counts,
        "day": partition_day(source),
        "rate": raw_rate.decode() if raw_rate else None,
        "weighted": weighted,
        "ts": ts,
        "source": source,
    }
    if not write:
        return result | {"cpu_seconds": time.process_time() - started}
    indptr, fields, indices, values = table_csr(table, spec)
    label_values = np.asarray(table[target.label].to_numpy(), dtype=np.float32)
    weights = (
        np.asarray(table[WEIGHT_COLUMN].fill_null(1.0).to_numpy(), dtype=np.float32)
        if weighted
        else None
    )
    arrays = {
        "indptr": indptr,
        "fields": fields,
        "indices": indices,
        "values": values,
        "labels": label_values,
        "weights": weights,
    }
    extra = {"source": source}
    store = open_store(store_url)
    local = local_root(store, prefix)
    if local is not None:
        info = write_shard(local, name, **arrays, extra=extra)
    else:
        with tempfile.TemporaryDirectory(prefix="bidscore-shard-") as tmp:
            info = write_shard(tmp, name, **arrays, extra=extra)
            for path in sorted((Path(tmp) / name).iterdir()):
                store.put(path, f"{prefix}/{name}/{path.name}")
    return result | {"info": info.to_json(), "cpu_seconds": time.process_time() - started}


@dataclass
class Prepared:
    """A prepared data set: its shard index (on local disk) and what the files recorded."""

    index: ShardIndex
    rate: float  # the downsampling rate every file recorded, else 1.0 (mixed or none)
    weighted: bool  # some file had a weight column (mixed rates train with weights)
    window: dict[str, str] | None
    sources: list[str]
    wall_seconds: float
    cpu_seconds: float
    cache: Path | None = None  # a local copy of remote shards, removed by `cleanup`
    store_keys: list[str] = field(default_factory=list)
    # Per file, in source order: {"source", "day", "counts", "profile"} (validation's input)
    parts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.index.rows


def _window(parts: Sequence[dict[str, Any]]) -> dict[str, str] | None:
    import datetime as dt  # noqa: PLC0415

    spans = [p["ts"] for p in parts if p["ts"] is not None]
    if not spans:
        return None

    def day(ts: int) -> str:
        return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()

    return {"start": day(min(s[0] for s in spans)), "end": day(max(s[1] for s in spans))}


def _common_rate(parts: Sequence[dict[str, Any]]) -> float:
    """As `features.readers.combine_tables`: one rate shared by every file, else none."""
    rates = {p["rate"] for p in parts}
    rate = rates.pop() if len(rates) == 1 else None
    return float(rate) if rate else 1.0


def run_tasks(
    sources: Sequence[str],
    *,
    store_url: str,
    prefix: str,
    model: str,
    specs: str | None,
    ray: Any | None,
    write: bool = True,
) -> list[dict[str, Any]]:
    """`prepare_file` for every source: Ray tasks (one CPU each) when `ray` is given, else
    here one after another. Results come back in source order whatever order tasks end in."""
    common: dict[str, Any] = {
        "store_url": store_url,
        "prefix": prefix,
        "model": model,
        "specs": specs,
        "write": write,
    }
    if ray is None:
        return [prepare_file(src, name=shard_name(i), **common) for i, src in enumerate(sources)]
    task = ray.remote(num_cpus=1, max_retries=0)(prepare_file)
    refs = [task.remote(src, name=shard_name(i), **common) for i, src in enumerate(sources)]
    return list(ray.get(refs))


def prepare(
    paths: Sequence[str | Path],
    model: str,
    *,
    store: Any,
    specs: str | None = None,
    ray: Any | None = None,
    run_id: str | None = None,
    notify: Notify | None = None,
) -> Prepared:
    """Prepare every file behind `paths` for `model` into shards under
    `prepared/RUN/` in `store` and write the index (see the module docstring)."""
    from features.catalog import load  # noqa: PLC0415
    from features.readers import list_files  # noqa: PLC0415

    say = notify or (lambda _: None)
    started = time.perf_counter()
    spec = load(specs).spec(model)
    sources = list_files([str(p) for p in paths])
    run = run_id or uuid.uuid4().hex[:12]
    prefix = f"{PREPARED_PREFIX}/{run}"
    where = "Ray tasks" if ray is not None else "this process"
    say(f"prepare: {len(sources)} file(s) into shards under {store.uri_for(prefix)} ({where})")
    parts = run_tasks(
        sources, store_url=store.url, prefix=prefix, model=model, specs=specs, ray=ray
    )
    shards = [ShardInfo.from_json(p["info"]) for p in parts]
    local = local_root(store, prefix)
    cache = None
    if local is None:
        # Remote shards: the driver trains from a local copy.
        cache = Path(tempfile.mkdtemp(prefix="bidscore-prepared-"))
        for s in shards:
            (cache / s.name).mkdir()
            for key in store.list_keys(f"{prefix}/{s.name}/"):
                store.get(store.uri_for(key), cache / s.name / key.rsplit("/", 1)[1])
        root = cache
    else:
        root = local
    profile = merge_profiles([p["profile"] for p in parts])
    extra = {"model": model, "sources": sources}
    write_index(
        root,
        shards,
        fingerprint=spec.fingerprint,
        hash_bits=spec.bits,
        num_fields=len(spec.fields),
        profile=dict(profile),
        extra=extra,
    )
    if cache is not None:
        store.put(cache / INDEX_NAME, f"{prefix}/{INDEX_NAME}")
    index = read_index(root)
    prepared = Prepared(
        index=index,
        rate=_common_rate(parts),
        weighted=any(p["weighted"] for p in parts),
        window=_window(parts),
        sources=sources,
        wall_seconds=time.perf_counter() - started,
        cpu_seconds=sum(float(p["cpu_seconds"]) for p in parts),
        cache=cache,
        store_keys=store.list_keys(f"{prefix}/"),
        parts=[_part(p) for p in parts],
    )
    say(
        f"prepare: {index.rows:,} rows in {len(shards)} shard(s),"
        f" {prepared.wall_seconds:.1f}s wall, {prepared.cpu_seconds:.1f}s CPU in tasks"
    )
    return prepared


def _part(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in ("source", "day", "counts", "profile")}


def profile_files(
    paths: Sequence[str | Path],
    model: str,
    *,
    store: Any,
    specs: str | None = None,
    ray: Any | None = None,
) -> list[dict[str, Any]]:
    """Per file of `paths`: the statistics `prepare` returns (`Prepared.parts`), without
    tokenising or writing shards (retraining's holdout days: validated, not trained on)."""
    from features.readers import list_files  # noqa: PLC0415

    sources = list_files([str(p) for p in paths])
    parts = run_tasks(
        sources, store_url=store.url, prefix=PREPARED_PREFIX, model=model, specs=specs,
        ray=ray, write=False,
    )  # fmt: skip
    return [_part(p) for p in parts]


def cleanup(prepared: Prepared, store: Any) -> None:
    """Remove a run's shards from the store and its local cache."""
    for key in prepared.store_keys:
        store.delete(store.uri_for(key))
    if prepared.cache is not None:
        shutil.rmtree(prepared.cache, ignore_errors=True)
    if prepared.cache is None:
        shutil.rmtree(prepared.index.root, ignore_errors=True)


@dataclass
class Csr:
    """Rows in CSR form with labels (and weights), as rust_core.Dataset.from_csr takes them."""

    indptr: npt.NDArray[np.uint64]
    fields: npt.NDArray[np.uint32]
    indices: npt.NDArray[np.uint32]
    values: npt.NDArray[np.float32]
    labels: npt.NDArray[np.float32]
    weights: npt.NDArray[np.float32] | None

    @property
    def rows(self) -> int:
        return len(self.labels)

    def take(self, mask: npt.NDArray[np.bool_]) -> Csr:
        """The rows where `mask` is true, in order."""
        bounds = self.indptr.astype(np.int64)
        lengths = (bounds[1:] - bounds[:-1])[mask]
        starts = self.indptr[:-1].astype(np.int64)[mask]
        indptr = np.zeros(len(lengths) + 1, dtype=np.uint64)
        np.cumsum(lengths, out=indptr[1:])
        # Positions of every kept entry: each kept row's start, counted up along its length.
        offsets = np.arange(int(indptr[-1]), dtype=np.int64) - np.repeat(
            indptr[:-1].astype(np.int64), lengths
        )
        pos = np.repeat(starts, lengths) + offsets
        return Csr(
            indptr=indptr,
            fields=self.fields[pos],
            indices=self.indices[pos],
            values=self.values[pos],
            labels=self.labels[mask],
            weights=None if self.weights is None else self.weights[mask],
        )

    def dataset(self, *, weighted: bool) -> Any:
        import rust_core  # noqa: PLC0415

        return rust_core.Dataset.from_csr(
            self.indptr,
            self.fields,
            self.indices,
            self.values,
            self.labels,
            self.weights if weighted else None,
        )


def load_csr(index: ShardIndex) -> Csr:
    """Every shard of `index`, concatenated in index order (in memory: `control train
    --on-disk` streams shards instead)."""
    if not index.shards:
        raise TrainingInputError(f"{index.root}: the prepared data has no shards")
    arrays = [read_shard(p) for p in index.paths()]
    weighted = any("weights" in a for a in arrays)
    nnz = np.cumsum([0] + [len(a["fields"]) for a in arrays[:-1]]).astype(np.uint64)
    indptr = np.concatenate(
        [np.zeros(1, np.uint64)]
        + [a["indptr"][1:] + off for a, off in zip(arrays, nnz, strict=True)]
    )
    return Csr(
        indptr=indptr,
        fields=np.concatenate([a["fields"] for a in arrays]),
        indices=np.concatenate([a["indices"] for a in arrays]),
        values=np.concatenate([a["values"] for a in arrays]),
        labels=np.concatenate([a["labels"] for a in arrays]),
        weights=np.concatenate(
            [a.get("weights", np.ones(len(a["labels"]), np.float32)) for a in arrays]
        )
        if weighted
        else None,
    )
