"""Readers of labelled bid logs: Parquet, CSV, JSONL, daily Hive partitions (local or S3), and
libffm text (already featurised, read by `rust_core`).

```python
table = read_logs("logs/", required_labels=("click",), start="2026-11-01", end="2026-11-07")
```

A path is a file (by extension: `.parquet`/`.pq`, `.csv`, `.jsonl`/`.ndjson`/`.json`, optionally
`.gz` for the text formats) or a directory of daily partitions `dt=YYYY-MM-DD/part-*.parquet`
(read in date order; plain `*.parquet` files directly in a directory also work). `s3://` URLs
work the same through boto3.

The result has every raw column of the schema with its declared type (absent optional columns
as nulls: the tokenizer applies the defaults), the label columns as int64 0/1, `weight` as
float64 if any file has one (1.0 where a file had none), and the other columns as read. Any
problem is a `LogReadError` naming the file, and the column and 1-based data row when it has one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import rust_core
from features.bid import BidRequest
from features.readers import s3
from features.readers.cast import (
    DOWNSAMPLE_RATE_KEY,
    LABEL_COLUMNS,
    WEIGHT_COLUMN,
    Column,
    LogReadError,
    conform,
)
from features.readers.formats import Source, read_file

if TYPE_CHECKING:
    from features.schema import FeatureSchema

__all__ = [
    "DOWNSAMPLE_RATE_KEY",
    "LABEL_COLUMNS",
    "LogReadError",
    "Partition",
    "combine_tables",
    "downsample_rate",
    "list_files",
    "list_partitions",
    "read_libffm",
    "read_logs",
]

_PARTITION = re.compile(r"^dt=(.*)$")
_PART_FILE = re.compile(r"^part-[^/]*\.parquet$")

PathLike = str | Path


class Partition(NamedTuple):
    """One day of logs: its date, its directory (or S3 prefix URL), its row count."""

    date: dt.date
    path: str
    rows: int


def _schema_columns(schema: type[FeatureSchema]) -> list[Column]:
    info = schema.schema_info()
    return [Column(f.name, f.type, f.default is None) for f in info.raw.values()]


def _as_date(value: dt.date | str | None, what: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise LogReadError(f"{what} must be a date YYYY-MM-DD, got {value!r}") from None


def _partition_date(name: str, where: str) -> dt.date | None:
    match = _PARTITION.match(name)
    if match is None:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        raise LogReadError(f"{where}: partition {name!r} is not dt=YYYY-MM-DD") from None


# --- discovery: each root becomes (date or None, [sources...]) groups ----------------------


def _local_partitions(root: Path) -> list[tuple[dt.date, str, list[Path]]]:
    out = []
    for child in sorted(root.iterdir()):
        if not child.is_dir():
            continue
        date = _partition_date(child.name, str(root))
        if date is not None:
            files = sorted(p for p in child.iterdir() if _PART_FILE.match(p.name) and p.is_file())
            out.append((date, str(child), files))
    return sorted(out, key=lambda item: item[0])


def _s3_partitions(loc: s3.S3Location) -> list[tuple[dt.date, str, list[tuple[str, int]]]]:
    groups: dict[dt.date, list[tuple[str, int]]] = {}
    base = f"{loc.key}/" if loc.key else ""
    for key, size in s3.list_keys(loc):
        parts = key[len(base) :].split("/")
        if len(parts) != 2 or not _PART_FILE.match(parts[1]):
            continue
        date = _partition_date(parts[0], loc.name())
        if date is not None:
            groups.setdefault(date, []).append((key, size))
    return [
        (date, loc.url(f"{base}dt={date.isoformat()}"), sorted(groups[date]))
        for date in sorted(groups)
    ]


def list_partitions(root: PathLike) -> list[Partition]:
    """The daily partitions under `root` (a directory or s3:// prefix), oldest first, with row
    counts from the Parquet footers (nothing else is read)."""
    text = str(root)
    if s3.is_s3(text):
        loc = s3.parse_s3(text)
        return [
            Partition(date, url, sum(s3.parquet_rows(loc, key, size) for key, size in objects))
            for date, url, objects in _s3_partitions(loc)
        ]
    path = Path(root)
    if not path.is_dir():
        raise LogReadError(f"{path}: not a directory")
    out = []
    for date, where, files in _local_partitions(path):
        try:
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        except (pa.ArrowException, OSError) as exc:
            raise LogReadError(f"{where}: not a readable Parquet file ({exc})") from None
        out.append(Partition(date, where, rows))
    return out


def _in_range(date: dt.date, start: dt.date | None, end: dt.date | None) -> bool:
    return (start is None or date >= start) and (end is None or date <= end)


def _sources(
    root: str, start: dt.date | None, end: dt.date | None, *, fetch: bool = True
) -> list[Source]:
    """The files behind one path argument, in read order (S3 objects' bytes only with
    `fetch`)."""
    ranged = start is not None or end is not None
    if s3.is_s3(root):
        loc = s3.parse_s3(root)
        if loc.key and not ranged and s3.object_exists(loc):
            return [Source(loc.name(), data=s3.fetch(loc, loc.key) if fetch else None)]
        groups = _s3_partitions(loc)
        if not groups and not ranged:
            # A partition's own prefix (as list_partitions returns it): its Parquet objects.
            base = f"{loc.key}/" if loc.key else ""
            flat = sorted(
                key
                for key, _ in s3.list_keys(loc)
                if "/" not in key[len(base) :]
                and key.endswith((".parquet", ".pq"))
                and not key[len(base) :].startswith((".", "_"))
            )
            if not flat:
                raise LogReadError(f"{root}: no dt=YYYY-MM-DD partitions and no Parquet objects")
            return [
                Source(loc.name(key), data=s3.fetch(loc, key) if fetch else None) for key in flat
            ]
        return [
            Source(loc.name(key), data=s3.fetch(loc, key) if fetch else None)
            for date, _, objects in groups
            if _in_range(date, start, end)
            for key, _ in objects
        ]
    path = Path(root)
    if not path.exists():
        raise LogReadError(f"{path}: no such file or directory")
    if path.is_file():
        if ranged:
            raise LogReadError(f"{path}: start/end select partitions of a directory, not rows")
        return [Source(str(path), path=path)]
    partitions = _local_partitions(path)
    if partitions:
        return [
            Source(str(f), path=f)
            for date, _, files in partitions
            if _in_range(date, start, end)
            for f in files
        ]
    if ranged:
        raise LogReadError(f"{path}: no dt=YYYY-MM-DD partitions to select by date")
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix in (".parquet", ".pq") and not p.name.startswith((".", "_"))
    )
    if not files:
        raise LogReadError(f"{path}: no dt=YYYY-MM-DD partitions and no Parquet files")
    return [Source(str(p), path=p) for p in files]


def list_files(path_or_paths: PathLike | Sequence[PathLike]) -> list[str]:
    """The files (local paths or `s3://` URLs) `read_logs` would read, in its order, without
    reading them: each can be read on its own with `read_logs(name)`."""
    roots = [path_or_paths] if isinstance(path_or_paths, str | Path) else list(path_or_paths)
    if not roots:
        raise LogReadError("no input paths")
    names = []
    for root in map(str, roots):
        # An object URL keeps the root's query (endpoint_url=...), so it reads on its own.
        query = s3.parse_s3(root).query if s3.is_s3(root) else ""
        tail = f"?{query}" if query else ""
        names += [src.name + tail for src in _sources(root, None, None, fetch=False)]
    return names


def _rate_of(table: pa.Table) -> bytes | None:
    meta = table.schema.metadata or {}
    return meta.get(DOWNSAMPLE_RATE_KEY)


def combine_tables(tables: list[pa.Table], names: list[str]) -> pa.Table:
    """Tables read one by one (files, days) as one; `names` label them in errors.

    The downsampling rate in the metadata survives only when every table shares it; tables
    without a `weight` column were not downsampled, so their rows weigh 1.
    """
    rates = {_rate_of(t) for t in tables}
    has_weight = any(WEIGHT_COLUMN in t.column_names for t in tables)
    try:
        combined = pa.concat_tables(
            [t.replace_schema_metadata(None) for t in tables], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise LogReadError(f"{', '.join(names)}: files do not combine ({exc})") from None
    if has_weight:
        # A file without weights was not downsampled: each of its rows counts once.
        filled = pc.fill_null(combined[WEIGHT_COLUMN], 1.0)
        combined = combined.set_column(
            combined.column_names.index(WEIGHT_COLUMN), WEIGHT_COLUMN, filled
        )
    rate = rates.pop() if len(rates) == 1 else None
    # One rate for every file is the dataset's rate; mixed rates live on only in the weights.
    return combined.replace_schema_metadata({DOWNSAMPLE_RATE_KEY: rate} if rate else None)


def read_logs(
    path_or_paths: PathLike | Sequence[PathLike],
    schema: type[FeatureSchema] = BidRequest,
    required_labels: Iterable[str] = (),
    *,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> pa.Table:
    """Read labelled logs conformed to `schema` (by default the project's `BidRequest`).

    `required_labels` must be present and 0/1 in every row. `start`/`end` (inclusive dates)
    select daily partitions of a directory root.
    """
    columns = _schema_columns(schema)
    labels = list(required_labels)
    first, last = _as_date(start, "start"), _as_date(end, "end")
    if first is not None and last is not None and first > last:
        raise LogReadError(f"start {first} is after end {last}")
    roots = [path_or_paths] if isinstance(path_or_paths, str | Path) else list(path_or_paths)
    if not roots:
        raise LogReadError("no input paths")
    sources = [src for root in roots for src in _sources(str(root), first, last)]
    if not sources:
        window = f"{first or '...'} .. {last or '...'}"
        raise LogReadError(f"{', '.join(map(str, roots))}: no partitions in {window}")
    tables = []
    for src in sources:
        raw = read_file(src, columns, labels + list(LABEL_COLUMNS))
        tables.append(conform(raw, columns, labels, file=src.name))
    return combine_tables(tables, [s.name for s in sources])


def downsample_rate(table: pa.Table) -> float:
    """The negative downsampling rate recorded with the data (1.0 when none was)."""
    raw = _rate_of(table)
    if raw is None:
        return 1.0
    try:
        rate = float(raw.decode())
    except ValueError:
        raise LogReadError(f"bad {DOWNSAMPLE_RATE_KEY.decode()} metadata {raw!r}") from None
    if not 0 < rate <= 1:
        raise LogReadError(f"bad {DOWNSAMPLE_RATE_KEY.decode()} metadata {raw!r}")
    return rate


def read_libffm(path: PathLike) -> rust_core.Dataset:
    """libffm text (`label field:index:value ...`), already featurised: a rust_core.Dataset."""
    p = Path(path)
    if not p.is_file():
        raise LogReadError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise LogReadError(f"{p}: file is empty")
    try:
        return rust_core.Dataset.from_libffm(str(p))
    except (ValueError, OSError) as exc:
        message = str(exc)
        raise LogReadError(message if str(p) in message else f"{p}: {message}") from None
