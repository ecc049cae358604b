"""Test data for the monitoring suites: generated logs (control.datagen), versions registered
in a real SQLite registry with real profiles, and prediction logs written by the real
`pyserver.predlog.PredictionLog`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry

from bidscore.manifest import Manifest
from bidscore.registry import Registry, Version
from bidscore.v1 import scorer_pb2
from control.profile import RawType, profile_table, spec_features
from features.bid import SPECS
from pyserver.predlog import PredictionLog

DAY = 86_400


def feature_types(model: str = "ctr") -> dict[str, RawType]:
    return spec_features(SPECS[model])


def days_of(table: pa.Table) -> list[pa.Table]:
    """The table split by UTC day, in order."""
    day = pc.divide(table["ts"], DAY)
    return [table.filter(pc.equal(day, d)) for d in sorted(set(day.to_pylist()))]


def register(
    registry: Registry,
    model: str,
    table: pa.Table,
    *,
    metrics: dict[str, Any] | None = None,
) -> Version:
    """Register a version whose manifest profiles `table` the way training does."""
    manifest = {
        "model": model,
        "metrics": metrics
        or {
            "logloss": 0.13,
            "auc": 0.72,
            "ne": 0.9,
            "calibration": 1.0,
            "rows": 100,
            "positives": 5,
        },
        "profile": profile_table(table, feature_types(model)),
        "data": {"rows": table.num_rows},
    }
    return registry.register_version(
        model, Manifest.from_json(manifest), f"file:///nowhere/{model}.model"
    )


def wire_text(value: Any) -> str:
    """A raw value as the bidder sends it (strings on the wire)."""
    return repr(value) if isinstance(value, float) else str(value)


def write_prediction_log(
    destination: Path | str,
    table: pa.Table,
    scores: np.ndarray,
    *,
    model: str = "ctr",
    version: str = "1",
    include_features: bool = False,
    context_columns: tuple[str, ...] = (),
    candidate_columns: tuple[str, ...] = (),
) -> PredictionLog:
    """Log every request of `table` (rows grouped by request_id) with `scores` per row,
    stamped with the request's own `ts`, through a real PredictionLog; returns it closed."""
    log = PredictionLog(
        str(destination),
        sample_rate=1.0,
        include_features=include_features,
        registry=CollectorRegistry(),
        queue_size=table.num_rows + 1,  # the whole table at once: a test log drops nothing
    )
    rows = table.select(
        ["request_id", "candidate_id", "ts", *context_columns, *candidate_columns]
    ).to_pylist()
    start = 0
    while start < len(rows):
        end = start
        while end < len(rows) and rows[end]["request_id"] == rows[start]["request_id"]:
            end += 1
        request = scorer_pb2.ScoreRequest(
            request_id=rows[start]["request_id"],
            context={c: wire_text(rows[start][c]) for c in context_columns},
        )
        response = scorer_pb2.ScoreResponse(
            request_id=rows[start]["request_id"],
            models=[scorer_pb2.ModelVersion(name=model, version=version)],
        )
        for i in range(start, end):
            request.candidates.add(
                id=rows[i]["candidate_id"],
                features={c: wire_text(rows[i][c]) for c in candidate_columns},
            )
            response.candidates.add(id=rows[i]["candidate_id"], scores=[float(scores[i])])
        assert log.log_response(request, response, ts=float(rows[start]["ts"]))
        start = end
    assert log.close()
    assert log.dropped() == 0
    return log


def write_outcomes(path: Path, table: pa.Table, *, click_delay: float = 60.0) -> Path:
    """Click events of `table` (with their conversions) `click_delay` seconds after the
    request, as an outcome file."""
    clicked = table.filter(pc.equal(table["click"], 1))
    ts = clicked["ts"].to_numpy().astype(np.float64)
    events = pa.table(
        {
            "request_id": clicked["request_id"],
            "candidate_id": clicked["candidate_id"],
            "click": clicked["click"],
            "conversion": clicked["conversion"],
            "ts": pa.array(ts + click_delay),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(events, path)
    return path
