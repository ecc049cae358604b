"""Reading one file (local or fetched from S3) of Parquet, CSV or JSONL into an Arrow table.

Arrow's readers do the work; when one fails, a slow exact scan of the text finds the first bad
row, because Arrow's own row numbers are per block and 0-based.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from features.readers.cast import ARROW_TYPES, WEIGHT_COLUMN, Column, LogReadError

PARQUET = (".parquet", ".pq")
CSV = (".csv", ".csv.gz")
JSONL = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
LIBFFM = (".ffm", ".libffm", ".txt")


@dataclass(frozen=True)
class Source:
    """One input file: a local path, or the bytes of an S3 object and its URL."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def arrow_input(self) -> str | pa.NativeFile:
        if self.path is not None:
            return str(self.path)
        if self.name.endswith(".gz"):
            return pa.CompressedInputStream(pa.BufferReader(self.data or b""), "gzip")
        return pa.BufferReader(self.data or b"")

    def size(self) -> int:
        return self.path.stat().st_size if self.path is not None else len(self.data or b"")

    def text_lines(self) -> Iterator[str]:
        raw: IO[bytes] = (
            self.path.open("rb") if self.path is not None else io.BytesIO(self.data or b"")
        )
        with raw:
            stream = gzip.GzipFile(fileobj=raw) if self.name.endswith(".gz") else raw
            yield from io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")


def file_format(name: str) -> str:
    lower = name.lower()
    for fmt, suffixes in (("parquet", PARQUET), ("csv", CSV), ("jsonl", JSONL), ("libffm", LIBFFM)):
        if lower.endswith(suffixes):
            return fmt
    raise LogReadError(
        f"{name}: unknown file type (expected .parquet, .csv, .jsonl or a partitioned directory)"
    )


def _wanted_types(columns: list[Column], labels: list[str]) -> dict[str, pa.DataType]:
    types = {c.name: ARROW_TYPES[c.type] for c in columns}
    for label in labels:
        types[label] = pa.int64()
    types[WEIGHT_COLUMN] = pa.float64()
    return types


def read_parquet(source: Source) -> pa.Table:
    try:
        return pq.read_table(source.arrow_input())
    except (pa.ArrowException, OSError) as exc:
        raise LogReadError(f"{source.name}: not a readable Parquet file ({exc})") from None


def _csv_header(source: Source) -> list[str]:
    for row in csv.reader(source.text_lines()):
        return row
    raise LogReadError(f"{source.name}: file is empty")


def _csv_scan(source: Source, header: list[str]) -> LogReadError | None:
    """The first row whose field count differs from the header's, as an error."""
    reader = csv.reader(source.text_lines())
    next(reader, None)
    for i, row in enumerate(reader, start=1):
        if row and len(row) != len(header):
            missing = f" (column {header[len(row)]!r} absent)" if len(row) < len(header) else ""
            return LogReadError(
                f"{source.name}: row {i}: {len(row)} values for {len(header)} columns{missing}"
            )
    return None


def read_csv(source: Source) -> pa.Table:
    """Every column as text (typing is the caller's, per the schema).

    An empty cell is a missing value; a quoted empty string `""` is the empty string, so a
    table written by Arrow's CSV writer reads back exactly."""
    header = _csv_header(source)
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()),
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    try:
        return pacsv.read_csv(source.arrow_input(), convert_options=convert)
    except (pa.ArrowException, OSError) as exc:
        located = _csv_scan(source, header)
        raise (located or LogReadError(f"{source.name}: not a readable CSV file ({exc})")) from None


def _json_kind_ok(value: object, kind: pa.DataType) -> bool:
    if value is None:
        return True
    if pa.types.is_string(kind):
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if pa.types.is_integer(kind):
        return isinstance(value, int)
    return isinstance(value, int | float)


def _json_scan(source: Source, types: dict[str, pa.DataType]) -> LogReadError | None:
    """The first line that is not a JSON object or holds a value of the wrong JSON type."""
    for i, line in enumerate(source.text_lines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            return LogReadError(f"{source.name}: row {i}: not valid JSON ({exc.msg})")
        if not isinstance(record, dict):
            return LogReadError(f"{source.name}: row {i}: not a JSON object")
        for name, kind in types.items():
            if name in record and not _json_kind_ok(record[name], kind):
                word = {"string": "a string", "int64": "an integer", "double": "a number"}
                return LogReadError(
                    f"{source.name}: column {name!r}, row {i}: {record[name]!r} is not "
                    f"{word.get(str(kind), str(kind))}"
                )
    return None


def read_jsonl(source: Source, columns: list[Column], labels: list[str]) -> pa.Table:
    """One JSON object per line; declared columns are parsed as their declared types."""
    types = _wanted_types(columns, labels)
    try:
        head = pajson.read_json(
            source.arrow_input(),
            parse_options=pajson.ParseOptions(unexpected_field_behavior="infer"),
        )
    except (pa.ArrowException, OSError) as exc:
        located = _json_scan(source, types)
        raise (located or LogReadError(f"{source.name}: not readable JSONL ({exc})")) from None
    # Second pass with the declared types for the columns present, so that "7" for an int is
    # an error rather than a silently inferred string column.
    present = {name: kind for name, kind in types.items() if name in head.column_names}
    if all(head.schema.field(n).type == k for n, k in present.items()):
        return head
    options = pajson.ParseOptions(
        explicit_schema=pa.schema(list(present.items())), unexpected_field_behavior="infer"
    )
    try:
        return pajson.read_json(source.arrow_input(), parse_options=options)
    except (pa.ArrowException, OSError) as exc:
        located = _json_scan(source, types)
        raise (located or LogReadError(f"{source.name}: not readable JSONL ({exc})")) from None


def read_file(source: Source, columns: list[Column], labels: list[str]) -> pa.Table:
    """One file by its extension; an empty file is an error."""
    fmt = file_format(source.name)
    if fmt == "libffm":
        raise LogReadError(
            f"{source.name}: libffm text is already featurised; read it with "
            "features.readers.read_libffm (a rust_core.Dataset)"
        )
    if source.size() == 0:
        raise LogReadError(f"{source.name}: file is empty")
    if fmt == "parquet":
        return read_parquet(source)
    if fmt == "csv":
        return read_csv(source)
    return read_jsonl(source, columns, labels)
