"""Feature specs through `rust_core`: training tables to CSR, requests to tokens.

`tokenize_table` hands pyarrow columns to Rust as numpy views of the Arrow buffers (no copy
for single-chunk columns of the declared type) and tokenises every row there. Only Python
`@property` features are computed here, row by row, and only when a spec reaches one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

import rust_core
from features.errors import FeatureError
from features.plan import plan_json
from features.schema import FeatureSchema, RawType
from features.spec import ModelSpec

Column = tuple[Any, ...]

_ARROW_TYPES: dict[RawType, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
}


def plan_for(spec: ModelSpec | Iterable[ModelSpec]) -> rust_core.FeaturePlan:
    """The compiled plan of one spec, or of several specs served together."""
    specs = [spec] if isinstance(spec, ModelSpec) else list(spec)
    return rust_core.FeaturePlan(plan_json(specs))


def _single_array(name: str, column: pa.Array | pa.ChunkedArray, kind: RawType) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        # One chunk is viewed as it is; `combine_chunks` would copy it.
        array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    else:
        array = column
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    if kind == "str" and (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array
    if kind == "float" and pa.types.is_integer(array.type):
        return array.cast(pa.int64())  # Rust widens int columns of float features itself
    if array.type == _ARROW_TYPES[kind]:
        return array
    try:
        return array.cast(_ARROW_TYPES[kind])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise FeatureError(f"column {name}: cannot read {array.type} as {kind}: {exc}") from None


def arrow_column(name: str, column: pa.Array | pa.ChunkedArray, kind: RawType) -> Column:
    """The `rust_core` Column tuple of an Arrow column, viewing its buffers in place."""
    array = _single_array(name, column, kind)
    n, offset = len(array), array.offset
    valid = pc.is_valid(array).to_numpy(zero_copy_only=False) if array.null_count else None
    buffers = array.buffers()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        width = 8 if pa.types.is_large_string(array.type) else 4
        offsets = np.frombuffer(
            buffers[1],
            dtype=np.int64 if width == 8 else np.int32,
            count=n + 1,
            offset=offset * width,
        )
        data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] else np.zeros(0, np.uint8)
        return ("str", offsets, data, valid)
    if pa.types.is_integer(array.type):
        return ("int", np.frombuffer(buffers[1], np.int64, count=n, offset=offset * 8), valid)
    return ("float", np.frombuffer(buffers[1], np.float64, count=n, offset=offset * 8), valid)


def _reached(specs: Sequence[ModelSpec]) -> list[str]:
    names: list[str] = []
    for spec in specs:
        names += [n for n in spec.reached() if n not in names]
    return names


def python_text(value: object) -> str | None:
    """A property's value as the text Rust parses: `repr` round-trips floats exactly."""
    if value is None:
        return None
    if isinstance(value, float):
        return repr(value)
    return str(value)


def python_columns(table: pa.Table, spec: ModelSpec) -> dict[str, list[str | None]]:
    """Values of the Python properties the spec reaches, computed row by row (the escape
    hatch's cost)."""
    info = spec.schema.schema_info()
    wanted = [n for n in spec.reached() if n in info.python]
    if not wanted:
        return {}
    raw = [n for n in info.raw if n in table.column_names]
    out: dict[str, list[str | None]] = {n: [] for n in wanted}
    for row, values in enumerate(table.select(raw).to_pylist()):
        try:
            instance = spec.schema.from_dict(values)
            for name in wanted:
                out[name].append(python_text(getattr(instance, name)))
        except FeatureError as exc:
            raise FeatureError(f"row {row + 1}: {exc}") from None
    return out


def _numeric_column(table: pa.Table, name: str) -> npt.NDArray[np.float32]:
    if name not in table.column_names:
        raise FeatureError(f"column {name} is missing")
    column = table.column(name)
    if column.null_count:
        first = pc.index(pc.is_null(column), True).as_py() + 1
        raise FeatureError(f"column {name}, row {first}: missing value")
    return np.asarray(column.to_numpy(), dtype=np.float32)


def numeric_column(table: pa.Table, name: str) -> npt.NDArray[np.float32]:
    """Column `name` (a label or weight) as float32; a missing value is a FeatureError."""
    return _numeric_column(table, name)


def table_columns(table: pa.Table, spec: ModelSpec) -> dict[str, Column]:
    """The Column tuples of the raw features `spec` reaches (absent ones are left out: Rust
    names them when it needs them)."""
    info = spec.schema.schema_info()
    return {
        name: arrow_column(name, table.column(name), info.raw[name].type)
        for name in spec.reached()
        if name in info.raw and name in table.column_names
    }


def tokenize_table(
    table: pa.Table, spec: ModelSpec, label: str | None, weights: str | None = None
) -> rust_core.Dataset:
    """A log table (one row per shown candidate) tokenised for `spec` into a CSR Dataset with
    `label` (and `weights`) as float32 columns."""
    labels = _numeric_column(table, label) if label else None
    row_weights = _numeric_column(table, weights) if weights else None
    return plan_for(spec).tokenize_columns(
        table_columns(table, spec),
        table.num_rows,
        spec.name,
        python_columns(table, spec) or None,
        labels=labels,
        weights=row_weights,
    )


def table_csr(
    table: pa.Table, spec: ModelSpec, plan: rust_core.FeaturePlan | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The CSR arrays `(indptr, fields, indices, values)` of a table (tests, benchmarks)."""
    return (plan or plan_for(spec)).tokenize_columns_csr(
        table_columns(table, spec),
        table.num_rows,
        spec.name,
        python_columns(table, spec) or None,
    )


def python_values(
    schema: type[FeatureSchema],
    specs: Sequence[ModelSpec],
    context: Mapping[str, str],
    candidates: Sequence[Mapping[str, str]],
) -> dict[str, list[str | None]] | None:
    """Serving side of the escape hatch: the Python properties `specs` reach, once per
    candidate (`None` when no spec reaches one, so the caller passes nothing to Rust)."""
    info = schema.schema_info()
    wanted = [n for n in _reached(specs) if n in info.python]
    if not wanted:
        return None
    out: dict[str, list[str | None]] = {n: [] for n in wanted}
    for i, features in enumerate(candidates):
        try:
            instance = schema.from_dict({**context, **features})
        except FeatureError as exc:
            raise FeatureError(f"candidate #{i}: {exc}") from None
        for name in wanted:
            out[name].append(python_text(getattr(instance, name)))
    return out
