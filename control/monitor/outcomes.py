"""Realised outcomes (clicks, conversions) as they arrive, keyed by request and candidate id.

An outcome file (Parquet, CSV or JSONL) has `request_id`, `candidate_id`, one or more 0/1 label
columns (`click`, `conversion`, ...) and optionally `ts`, the unix time of the event. Files may
carry different label columns (clicks today, conversions days later) and a key may appear in
several rows; a label is positive for a key if any row says 1, at the earliest such `ts`.
A row without `ts` counts as arriving in time.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from control.monitor.sources import MonitorInputError, read_sources

OUTCOME_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")
KEY = ("request_id", "candidate_id")


def read_outcomes(locations: Sequence[str], labels: Sequence[str]) -> pa.Table:
    """`request_id, candidate_id, ts (float64, null = in time)` and each of `labels` (int8,
    0 where a file lacks it), one row per outcome row read."""
    parts: list[pa.Table] = []
    for name, data in read_sources(locations, OUTCOME_SUFFIXES):
        parts.append(_normalise(name, _parse(name, data), labels))
    if not parts:
        raise MonitorInputError(
            f"no outcome files ({', '.join(OUTCOME_SUFFIXES)}) in {list(locations)}"
        )
    return pa.concat_tables(parts)


def first_positive_ts(outcomes: pa.Table, label: str) -> pa.Table:
    """`request_id, candidate_id, event_ts`: the earliest positive event per key for `label`
    (-inf when the event has no time, so that it always falls inside the window)."""
    positive = outcomes.filter(pc.equal(outcomes[label], 1))
    ts = pc.fill_null(positive["ts"], -np.inf)
    positive = positive.select(list(KEY)).append_column("event_ts", ts)
    grouped = positive.group_by(list(KEY)).aggregate([("event_ts", "min")])
    return grouped.rename_columns([*KEY, "event_ts"]) if grouped.num_rows else _empty_events()


def _empty_events() -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array([], pa.string()),
            "candidate_id": pa.array([], pa.string()),
            "event_ts": pa.array([], pa.float64()),
        }
    )


def _parse(name: str, data: bytes) -> pa.Table:
    try:
        if name.endswith(".parquet"):
            return pq.read_table(pa.BufferReader(data))
        if name.endswith(".csv"):
            # Keys are ids, not numbers, whatever they look like.
            options = pa_csv.ConvertOptions(column_types={k: pa.string() for k in KEY})
            return pa_csv.read_csv(io.BytesIO(data), convert_options=options)
        return pa_json.read_json(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise MonitorInputError(f"{name}: cannot parse outcomes: {exc}") from exc


def _normalise(name: str, table: pa.Table, labels: Sequence[str]) -> pa.Table:
    missing = [k for k in KEY if k not in table.column_names]
    if missing:
        raise MonitorInputError(f"{name}: outcome file lacks column(s) {missing}")
    present = [label for label in labels if label in table.column_names]
    if not present:
        raise MonitorInputError(
            f"{name}: outcome file has none of the label columns {list(labels)}"
        )
    n = table.num_rows
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for key in KEY:
        columns[key] = pc.cast(table[key], pa.string())
    columns["ts"] = (
        _column(name, table, "ts", pa.float64())
        if "ts" in table.column_names
        else pa.nulls(n, pa.float64())
    )
    for label in labels:
        if label in table.column_names:
            values = _column(name, table, label, pa.int8())
            bad = pc.sum(
                pc.invert(pc.is_in(pc.fill_null(values, 0), pa.array([0, 1], pa.int8())))
            ).as_py()
            if bad:
                raise MonitorInputError(
                    f"{name}: column {label!r} must hold 0 or 1 ({bad} rows do not)"
                )
            columns[label] = pc.fill_null(values, 0)
        else:
            columns[label] = pa.array(np.zeros(n, np.int8))
    return pa.table(columns)


def _column(name: str, table: pa.Table, column: str, to: pa.DataType) -> pa.ChunkedArray:
    try:
        return pc.cast(table[column], to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise MonitorInputError(f"{name}: column {column!r} is not {to}: {exc}") from exc
