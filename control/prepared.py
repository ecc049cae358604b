"""Where tokenised training rows live while a model trains: in memory (a `rust_core.Dataset`)
or on disk (CSR shards, `control.shards`, streamed by `rust_core.ShardedDataset`).

`control train --on-disk` always prepares shards; otherwise `choose_storage` estimates the
prepared size (rows x non-zeros per row, from a tokenised sample) and goes to disk when it
exceeds the memory budget (`--memory-budget`, default half of the available memory).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

import rust_core
from control.errors import TrainingInputError
from control.shards import ShardIndex, ShardInfo, read_index, write_index, write_shard
from features.spec import ModelSpec
from features.tokenize import numeric_column, plan_for, table_csr

# Rows tokenised to estimate the non-zeros per row.
SAMPLE_ROWS = 2_000
# Bytes per prepared row besides its non-zeros: indptr (8), label (4); weights add 4.
_ROW_BYTES = 12
# Bytes per non-zero: field (4), index (4), value (4).
_NNZ_BYTES = 12
# At most this many shards are in memory at once (training, reading, the reader's queue of
# rust_core.ShardedDataset's default prefetch of 2): a shard is sized to fit the budget
# that many times over, with room to spare for the model and the raw table.
_SHARDS_IN_MEMORY = 4
DEFAULT_SHARD_ROWS = 1 << 18
MIN_SHARD_ROWS = 1 << 12


@dataclass(frozen=True)
class Storage:
    """Where the training rows go, and why."""

    on_disk: bool
    reason: str
    estimate_bytes: int
    budget_bytes: int | None

    def to_json(self) -> dict[str, object]:
        return {
            "storage": "disk" if self.on_disk else "memory",
            "reason": self.reason,
            "estimate_bytes": self.estimate_bytes,
            "budget_bytes": self.budget_bytes,
        }


def available_memory() -> int:
    """Bytes of memory available to a new allocation (`MemAvailable` of /proc/meminfo; the
    physical memory where that file does not exist)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_budget(text: str) -> int:
    """`auto` (half of the available memory) or a size: bytes, or with a K/M/G/T suffix
    (binary: 1G = 2^30 bytes; a trailing B or iB is allowed)."""
    value = text.strip().lower()
    if value == "auto":
        return available_memory() // 2
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", value)
    if m is None or float(m.group(1)) <= 0:
        raise TrainingInputError(
            f"--memory-budget must be 'auto' or a size such as 4G or 512M, got {text!r}"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def nnz_per_row(table: pa.Table, spec: ModelSpec) -> float:
    """Mean non-zeros per row of `table` tokenised for `spec`, from its first rows."""
    sample = table.slice(0, min(SAMPLE_ROWS, table.num_rows))
    if sample.num_rows == 0:
        return 0.0
    indptr = table_csr(sample, spec)[0]
    return float(indptr[-1]) / int(sample.num_rows)


def prepared_bytes(rows: int, per_row: float, *, weighted: bool = False) -> int:
    """Bytes `rows` tokenised rows take, in memory or in shards."""
    return int(rows * (_ROW_BYTES + (4 if weighted else 0) + _NNZ_BYTES * per_row))


def choose_storage(
    table: pa.Table,
    spec: ModelSpec,
    *,
    on_disk: bool,
    budget: int | None,
    extra_rows: int = 0,
    weighted: bool = False,
) -> Storage:
    """Memory or disk for `table`'s rows (plus `extra_rows` of validation, which stay in
    memory either way), with the reason in words."""
    estimate = prepared_bytes(
        table.num_rows + extra_rows, nnz_per_row(table, spec), weighted=weighted
    )
    if on_disk:
        return Storage(True, "--on-disk was given", estimate, budget)
    if budget is None:
        return Storage(False, "no memory budget set", estimate, budget)
    if estimate > budget:
        why = (
            f"the prepared rows (~{human_bytes(estimate)}) exceed the memory budget"
            f" ({human_bytes(budget)})"
        )
        return Storage(True, why, estimate, budget)
    why = (
        f"the prepared rows (~{human_bytes(estimate)}) fit the memory budget"
        f" ({human_bytes(budget)})"
    )
    return Storage(False, why, estimate, budget)


def shard_rows(storage: Storage, rows: int) -> int:
    """Rows per shard: a few shards in memory at a time stay well within the budget."""
    if storage.budget_bytes is None or storage.estimate_bytes == 0 or rows == 0:
        return DEFAULT_SHARD_ROWS
    per_row = storage.estimate_bytes / rows
    fit = int(storage.budget_bytes / (2 * _SHARDS_IN_MEMORY) / max(per_row, 1.0))
    return max(MIN_SHARD_ROWS, min(DEFAULT_SHARD_ROWS, fit))


def write_table_shards(
    table: pa.Table,
    spec: ModelSpec,
    label: str,
    root: Path,
    *,
    weights: str | None = None,
    rows_per_shard: int = DEFAULT_SHARD_ROWS,
) -> ShardIndex:
    """Tokenise `table` for `spec` chunk by chunk into shards under `root` (one shard per
    chunk: only one chunk's tokens are in memory at a time) and write the index."""
    if rows_per_shard < 1:
        raise TrainingInputError(f"rows per shard must be >= 1, got {rows_per_shard}")
    plan = plan_for(spec)
    infos: list[ShardInfo] = []
    for n, start in enumerate(range(0, table.num_rows, rows_per_shard)):
        chunk = table.slice(start, rows_per_shard)
        indptr, fields, indices, values = table_csr(chunk, spec, plan)
        infos.append(
            write_shard(
                root,
                f"part-{n:05d}",
                indptr=indptr,
                fields=fields,
                indices=indices,
                values=values,
                labels=numeric_column(chunk, label),
                weights=numeric_column(chunk, weights) if weights else None,
            )
        )
        del indptr, fields, indices, values
    write_index(
        root,
        infos,
        fingerprint=spec.fingerprint,
        hash_bits=spec.bits,
        num_fields=len(spec.fields),
    )
    return read_index(root)


def sharded(root: Path) -> rust_core.ShardedDataset:
    """The shards under `root` as training input (errors become one-line input errors)."""
    try:
        return rust_core.ShardedDataset(str(root))
    except rust_core.DataError as exc:
        raise TrainingInputError(str(exc)) from None
