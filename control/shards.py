"""Prepared training data on disk: CSR shards and the index that lists them.

A shard root holds one directory per shard and an index (docs/scale.md, "Shard format"):

    root/shards.json            the index: totals, spec fingerprint, hash bits, fields, shards
    root/part-00000/indptr.npy  uint64, rows + 1 entries, starts at 0, ends at nnz
    root/part-00000/fields.npy  uint32, nnz entries
    root/part-00000/indices.npy uint32, nnz entries (already hashed to 2^hash_bits)
    root/part-00000/values.npy  float32, nnz entries
    root/part-00000/labels.npy  float32, rows entries
    root/part-00000/weights.npy float32, rows entries (only when the data is weighted)
    root/part-00000/meta.json   rows, nnz, label_sum, weight_sum of this shard

Every array is a plain `.npy` file (numpy's own format, little-endian, C order), so a shard
is read by numpy (`np.load`, memory-mapped if wanted) and by `rust_core.ShardedDataset`
alike. A shard is written to a temporary directory beside its final place and renamed into
it, so a reader never sees half a shard; an existing shard is never overwritten. The index
is written last (also through a rename): a root without `shards.json` is incomplete.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from control.errors import ShardError

FORMAT = "bidscore-shards"
SHARD_FORMAT = "bidscore-shard"
VERSION = 1
INDEX_NAME = "shards.json"
META_NAME = "meta.json"

# The arrays of a shard and their element types, in the order they are written.
ARRAYS: dict[str, type[np.generic]] = {
    "indptr": np.uint64,
    "fields": np.uint32,
    "indices": np.uint32,
    "values": np.float32,
    "labels": np.float32,
    "weights": np.float32,
}


@dataclass(frozen=True)
class ShardInfo:
    """One shard as the index lists it."""

    name: str  # directory name inside the shard root, e.g. "part-00000"
    rows: int
    nnz: int
    label_sum: float
    weight_sum: float  # == rows when unweighted

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ShardInfo:
        return cls(
            name=str(d["name"]),
            rows=int(d["rows"]),
            nnz=int(d["nnz"]),
            label_sum=float(d["label_sum"]),
            weight_sum=float(d["weight_sum"]),
        )


@dataclass(frozen=True)
class ShardIndex:
    """`root/shards.json`: the shards of one prepared data set and their totals."""

    root: Path
    rows: int
    nnz: int
    label_sum: float
    weight_sum: float
    fingerprint: str
    hash_bits: int
    num_fields: int
    shards: list[ShardInfo]
    profile: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    version: int = VERSION

    def paths(self) -> list[Path]:
        """The shard directories, in index order."""
        return [self.root / s.name for s in self.shards]

    def nbytes(self) -> int:
        """Bytes the shards' arrays take (in memory as on disk, headers aside)."""
        weighted = bool(self.extra.get("weighted", False))
        return (
            8 * (self.rows + len(self.shards)) + 12 * self.nnz + (8 if weighted else 4) * self.rows
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "version": self.version,
            "rows": self.rows,
            "nnz": self.nnz,
            "label_sum": self.label_sum,
            "weight_sum": self.weight_sum,
            "fingerprint": self.fingerprint,
            "hash_bits": self.hash_bits,
            "num_fields": self.num_fields,
            "shards": [s.to_json() for s in self.shards],
            "profile": self.profile,
            "extra": self.extra,
        }


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\\" in name or name == INDEX_NAME:
        raise ShardError(f"invalid shard name {name!r} (a plain directory name, not hidden)")


def _array(name: str, data: Any) -> npt.NDArray[Any]:
    arr = np.ascontiguousarray(np.asarray(data), dtype=ARRAYS[name])
    if arr.ndim != 1:
        raise ShardError(f"{name} must be 1-d, got shape {arr.shape}")
    return arr


def write_shard(
    root: str | Path,
    name: str,
    *,
    indptr: Any,
    fields: Any,
    indices: Any,
    values: Any,
    labels: Any,
    weights: Any = None,
    extra: dict[str, Any] | None = None,
) -> ShardInfo:
    """Write one CSR shard to `root/name` atomically and return what the index lists of it.

    Arrays are converted to the format's types (uint64 indptr, uint32 fields and indices,
    float32 values, labels and weights); their shapes are checked. Refuses a shard that
    exists already."""
    _check_name(name)
    root = Path(root)
    final = root / name
    if final.exists():
        raise ShardError(f"shard {final} exists already; shards are never overwritten")
    arrays = {
        "indptr": _array("indptr", indptr),
        "fields": _array("fields", fields),
        "indices": _array("indices", indices),
        "values": _array("values", values),
        "labels": _array("labels", labels),
    }
    if weights is not None:
        arrays["weights"] = _array("weights", weights)
    rows, nnz = len(arrays["labels"]), len(arrays["fields"])
    ptr = arrays["indptr"]
    if len(ptr) != rows + 1 or ptr[0] != 0 or int(ptr[-1]) != nnz:
        raise ShardError(
            f"shard {name}: indptr must have rows + 1 = {rows + 1} entries from 0 to nnz = {nnz}"
        )
    if len(arrays["indices"]) != nnz or len(arrays["values"]) != nnz:
        raise ShardError(f"shard {name}: fields, indices and values differ in length")
    if "weights" in arrays and len(arrays["weights"]) != rows:
        raise ShardError(f"shard {name}: weights must have one entry per row ({rows})")
    label_sum = float(arrays["labels"].sum(dtype=np.float64))
    weight_sum = (
        float(arrays["weights"].sum(dtype=np.float64)) if "weights" in arrays else float(rows)
    )
    info = ShardInfo(name=name, rows=rows, nnz=nnz, label_sum=label_sum, weight_sum=weight_sum)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        for key, arr in arrays.items():
            np.save(tmp / f"{key}.npy", arr, allow_pickle=False)
        meta = {
            "format": SHARD_FORMAT,
            "version": VERSION,
            **info.to_json(),
            "weighted": "weights" in arrays,
            # Field and feature counts of this shard (one more than the largest id), so that
            # a reader knows the model's shape without reading every shard's arrays.
            "num_fields": int(arrays["fields"].max()) + 1 if nnz else 0,
            "num_features": int(arrays["indices"].max()) + 1 if nnz else 0,
            "extra": extra or {},
        }
        (tmp / META_NAME).write_text(json.dumps(meta, indent=1) + "\n")
        try:
            # Renaming a directory onto an existing non-empty one fails: a racing writer of
            # the same name loses here instead of mixing files.
            os.rename(tmp, final)
        except OSError as exc:
            raise ShardError(f"shard {final} could not be put in place: {exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return info


def write_index(
    root: str | Path,
    shards: list[ShardInfo],
    *,
    fingerprint: str,
    hash_bits: int,
    num_fields: int,
    profile: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write `root/shards.json` listing `shards` (in training order) and their totals.

    Written through a temporary file and a rename, last: a root without an index is
    incomplete. The shards must exist under `root`."""
    root = Path(root)
    names = [s.name for s in shards]
    if len(set(names)) != len(names):
        raise ShardError("the index lists a shard twice")
    for s in shards:
        _check_name(s.name)
        if not (root / s.name / META_NAME).is_file():
            raise ShardError(f"shard {root / s.name} is missing (no {META_NAME})")
    weighted = any(
        json.loads((root / s.name / META_NAME).read_text()).get("weighted", False) for s in shards
    )
    index = ShardIndex(
        root=root,
        rows=sum(s.rows for s in shards),
        nnz=sum(s.nnz for s in shards),
        label_sum=math.fsum(s.label_sum for s in shards),
        weight_sum=math.fsum(s.weight_sum for s in shards),
        fingerprint=fingerprint,
        hash_bits=int(hash_bits),
        num_fields=int(num_fields),
        shards=list(shards),
        profile=profile,
        extra={"weighted": weighted, **(extra or {})},
    )
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{INDEX_NAME}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.write_text(json.dumps(index.to_json(), indent=1) + "\n")
    os.replace(tmp, root / INDEX_NAME)


def read_index(root: str | Path) -> ShardIndex:
    """The index of the shard root `root`, or a `ShardError` naming what is wrong with it
    (missing, not JSON, another format or version, a listed shard missing)."""
    root = Path(root)
    path = root / INDEX_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ShardError(
            f"{path} is missing: not a shard root, or its writing never finished"
        ) from None
    except OSError as exc:
        raise ShardError(f"{path} cannot be read: {exc}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShardError(f"{path} is corrupt (not JSON: {exc})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ShardError(f"{path} is not a bidscore shard index (format {FORMAT!r} expected)")
    if d.get("version") != VERSION:
        raise ShardError(
            f"{path} is shard format version {d.get('version')!r}; this bidscore reads"
            f" version {VERSION}"
        )
    try:
        shards = [ShardInfo.from_json(s) for s in d["shards"]]
        index = ShardIndex(
            root=root,
            rows=int(d["rows"]),
            nnz=int(d["nnz"]),
            label_sum=float(d["label_sum"]),
            weight_sum=float(d["weight_sum"] if "weight_sum" in d else d["rows"]),
            fingerprint=str(d["fingerprint"]),
            hash_bits=int(d["hash_bits"]),
            num_fields=int(d["num_fields"]),
            shards=shards,
            profile=d.get("profile"),
            extra=dict(d.get("extra") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ShardError(f"{path} is corrupt (bad or missing field: {exc})") from None
    if index.rows != sum(s.rows for s in shards) or index.nnz != sum(s.nnz for s in shards):
        raise ShardError(f"{path} is corrupt: its totals do not match its shards")
    for s in shards:
        if not (root / s.name).is_dir():
            raise ShardError(f"shard {root / s.name} listed in {path} is missing")
    return index


def read_shard(path: str | Path, *, mmap: bool = False) -> dict[str, npt.NDArray[Any]]:
    """The arrays of the shard directory `path` (memory-mapped read-only with `mmap`)."""
    path = Path(path)
    out: dict[str, npt.NDArray[Any]] = {}
    for name, dtype in ARRAYS.items():
        file = path / f"{name}.npy"
        if name == "weights" and not file.exists():
            continue
        try:
            arr = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise ShardError(f"shard {path} is missing {file.name}") from None
        except (OSError, ValueError) as exc:
            raise ShardError(f"shard {path}: {file.name} is corrupt ({exc})") from None
        if arr.dtype != np.dtype(dtype).newbyteorder("<") or arr.ndim != 1:
            raise ShardError(
                f"shard {path}: {file.name} is {arr.dtype}{arr.shape},"
                f" expected 1-d {np.dtype(dtype)}"
            )
        out[name] = arr
    return out
