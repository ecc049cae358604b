"""Conforming one file's table to a schema: declared types, required values, labels, weights.

Casts run vectorised; only when one fails do we search (by halving) for the first bad row, so
the error can name the file, the column and the 1-based data row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from features.errors import FeatureError

LABEL_COLUMNS = ("click", "conversion")
WEIGHT_COLUMN = "weight"
# Parquet key-value metadata: the rate at which negatives were kept when the log was written.
DOWNSAMPLE_RATE_KEY = b"bidscore.downsample_rate"

ARROW_TYPES: dict[str, pa.DataType] = {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}
_TYPE_WORDS = {"str": "a string", "int": "an integer", "float": "a number"}


class LogReadError(FeatureError):
    """Input data that cannot be read: names the file, and the column and row when known."""


@dataclass(frozen=True)
class Column:
    """A column the reader must deliver: its declared type and whether a value is required."""

    name: str
    type: str  # "str" | "int" | "float"
    required: bool


def _castable(source: pa.DataType, kind: str) -> bool:
    """Which stored types may become which declared types (a float never silently becomes a
    string: its text would not match the serving path's)."""
    if pa.types.is_dictionary(source):
        return _castable(source.value_type, kind)
    text = (
        pa.types.is_string(source)
        or pa.types.is_large_string(source)
        or pa.types.is_string_view(source)
    )
    integer = pa.types.is_integer(source)
    number = integer or pa.types.is_floating(source) or pa.types.is_decimal(source)
    allowed = {"str": text or integer, "int": text or number, "float": text or number}[kind]
    return bool(allowed or pa.types.is_null(source))


def _first_failure(array: pa.Array, target: pa.DataType) -> int:
    """Index of the first element whose cast fails (the whole array is known to fail)."""
    lo, hi = 0, len(array)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            pc.cast(array.slice(lo, mid - lo), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
        else:
            lo = mid
    return lo


def _value_text(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def cast_column(column: pa.ChunkedArray, kind: str, *, file: str, name: str) -> pa.ChunkedArray:
    """The column as the declared type (`str`/`int`/`float`); nulls stay nulls."""
    target = ARROW_TYPES[kind]
    if column.type == target:
        return column
    if not _castable(column.type, kind):
        raise LogReadError(
            f"{file}: column {name!r} holds {column.type} values, expected {_TYPE_WORDS[kind]}"
        )
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    if pa.types.is_string(column.type) and kind != "str":
        # Surrounding blanks are layout, and an empty text is no number: a missing value.
        column = pc.utf8_trim_whitespace(column)
        column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    offset = 0
    for chunk in column.chunks:
        try:
            pc.cast(chunk, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            i = _first_failure(chunk, target)
            raise LogReadError(
                f"{file}: column {name!r}, row {offset + i + 1}: "
                f"{_value_text(chunk[i].as_py())} is not {_TYPE_WORDS[kind]}"
            ) from None
        offset += len(chunk)
    raise LogReadError(f"{file}: column {name!r} cannot be read as {_TYPE_WORDS[kind]}")


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


def _check_no_nulls(column: pa.ChunkedArray, *, file: str, name: str, what: str) -> None:
    if column.null_count:
        row = _first_true(pc.is_null(column)) + 1
        raise LogReadError(f"{file}: column {name!r}, row {row}: missing value ({what})")


def _check_label(column: pa.ChunkedArray, *, file: str, name: str) -> None:
    bad = pc.fill_null(pc.invert(pc.is_in(column, value_set=pa.array([0, 1], pa.int64()))), False)
    if pc.any(bad).as_py():
        row = _first_true(bad)
        value = column[row].as_py()
        raise LogReadError(f"{file}: column {name!r}, row {row + 1}: label {value!r} is not 0 or 1")


def _check_weight(column: pa.ChunkedArray, *, file: str) -> None:
    finite = pc.and_(pc.is_finite(column), pc.greater(column, 0.0))
    bad = pc.fill_null(pc.invert(finite), False)
    if pc.any(bad).as_py():
        row = _first_true(bad)
        value = column[row].as_py()
        raise LogReadError(
            f"{file}: column {WEIGHT_COLUMN!r}, row {row + 1}: weight {value!r} is not a "
            "positive finite number"
        )


def conform(
    table: pa.Table,
    columns: Iterable[Column],
    required_labels: Iterable[str],
    *,
    file: str,
) -> pa.Table:
    """Cast the schema's columns, add absent optional ones as nulls (the tokenizer applies the
    defaults), check labels and weights; other columns pass through untouched."""
    if table.num_rows == 0:
        raise LogReadError(f"{file}: no data rows")
    required = list(dict.fromkeys(required_labels))
    for name in required:
        if name not in table.column_names:
            raise LogReadError(f"{file}: column {name!r} is missing (a requested label)")
    for col in columns:
        if col.name not in table.column_names:
            if col.required:
                raise LogReadError(f"{file}: column {col.name!r} is missing (required, no default)")
            table = table.append_column(col.name, pa.nulls(table.num_rows, ARROW_TYPES[col.type]))
            continue
        cast = cast_column(table[col.name], col.type, file=file, name=col.name)
        if col.required:
            _check_no_nulls(cast, file=file, name=col.name, what="required, no default")
        table = table.set_column(table.column_names.index(col.name), col.name, cast)
    for name in dict.fromkeys([*required, *LABEL_COLUMNS]):
        if name not in table.column_names:
            continue
        cast = cast_column(table[name], "int", file=file, name=name)
        if name in required:
            _check_no_nulls(cast, file=file, name=name, what="a requested label")
        _check_label(cast, file=file, name=name)
        table = table.set_column(table.column_names.index(name), name, cast)
    if WEIGHT_COLUMN in table.column_names:
        cast = cast_column(table[WEIGHT_COLUMN], "float", file=file, name=WEIGHT_COLUMN)
        _check_no_nulls(cast, file=file, name=WEIGHT_COLUMN, what="a sample weight")
        _check_weight(cast, file=file)
        table = table.set_column(table.column_names.index(WEIGHT_COLUMN), WEIGHT_COLUMN, cast)
    return table
