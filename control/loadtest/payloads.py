"""Score requests for a load test, as proto3 JSON objects, and the ghz data file holding them.

Two sources: the feature schema's generator (`control.datagen.request_payloads`) or a log
file in the project's raw log layout (one row per shown candidate, grouped by `request_id`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from control.datagen import CANDIDATE_COLUMNS, CONTEXT_COLUMNS, USER_ID_COLUMN, request_payloads
from control.loadtest.errors import LoadTestError

Payload = dict[str, Any]
MAX_PAYLOADS = 100_000


def generated_payloads(
    requests: int, seed: int, candidates: int, models: Sequence[str]
) -> list[Payload]:
    """`requests` distinct requests of `candidates` candidates each, asking for `models`."""
    _check_counts(requests, candidates)
    raw = request_payloads(requests, seed, candidates=candidates)
    return [with_models(payload, models) for payload in raw]


def payloads_from_logs(path: str | Path, requests: int, models: Sequence[str]) -> list[Payload]:
    """The first `requests` auctions of a log file (Parquet/CSV/JSONL or a partitioned dir)."""
    _check_counts(requests, 1)
    # features.readers pulls in every log format's reader; only this path needs it.
    from features.readers import read_logs  # noqa: PLC0415

    table = read_logs(path)
    if "request_id" not in table.column_names:
        raise LoadTestError(f"{path}: no request_id column, cannot group rows into requests")
    # The user id rides along in the context (not a feature): experiments key on it.
    context_cols = [c for c in (*CONTEXT_COLUMNS, USER_ID_COLUMN) if c in table.column_names]
    candidate_cols = [c for c in CANDIDATE_COLUMNS if c in table.column_names]
    keep = ["request_id", *(["candidate_id"] if "candidate_id" in table.column_names else [])]
    rows = table.select([*keep, *context_cols, *candidate_cols]).to_pylist()
    grouped: dict[str, Payload] = {}
    for row in rows:
        request_id = str(row["request_id"])
        payload = grouped.get(request_id)
        if payload is None:
            if len(grouped) == requests:
                continue
            payload = {"request_id": request_id, "context": _wire(row, context_cols)}
            payload["candidates"] = []
            grouped[request_id] = payload
        payload["candidates"].append(
            {"id": str(row.get("candidate_id") or ""), "features": _wire(row, candidate_cols)}
        )
    if not grouped:
        raise LoadTestError(f"{path}: no rows, so no requests to send")
    return [with_models(payload, models) for payload in grouped.values()]


def with_models(payload: Mapping[str, Any], models: Sequence[str]) -> Payload:
    """The payload asking for `models` (an empty list asks for every model served)."""
    return {**payload, "models": list(models)}


def write_data_file(payloads: Sequence[Payload], path: Path) -> Path:
    """ghz `--data-file`: a JSON array, sent round-robin, one element per call."""
    if not payloads:
        raise LoadTestError("no payloads to send")
    path.write_text(json.dumps(list(payloads), separators=(",", ":")), encoding="utf-8")
    return path


def _check_counts(requests: int, candidates: int) -> None:
    if not 1 <= requests <= MAX_PAYLOADS:
        raise LoadTestError(f"--requests must be in 1..{MAX_PAYLOADS}, got {requests}")
    if candidates < 1:
        raise LoadTestError(f"--candidates must be at least 1, got {candidates}")


def _wire(row: Mapping[str, Any], columns: Iterable[str]) -> dict[str, str]:
    """Wire values are strings; a null cell is left out so the server applies the default."""
    return {name: _text(row[name]) for name in columns if row.get(name) is not None}


def _text(value: Any) -> str:
    # Floats as Rust's shortest Display writes them (`3`, not `3.0`), like the generator.
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)
