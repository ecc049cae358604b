"""Joining logged predictions with realised outcomes under an attribution window.

A prediction made at time t is positive for its model's label if a positive event for the same
(request id, candidate id) happened by t + window. With no such event it becomes a negative only
once the window has closed (`as_of >= t + window`); until then it is *pending* and left out, so
outcomes that are merely late never count against a model. An event after the window is
ignored (the prediction stays negative). A model trained on a subset (cvr: `where="click"`)
is judged on the rows whose `where` label is positive in its own window; rows whose `where`
window is still open are pending too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from control.monitor.outcomes import KEY, first_positive_ts
from control.monitor.sources import MonitorInputError
from features.spec import Target

DEFAULT_WINDOW_SECONDS = 86_400.0


@dataclass(frozen=True)
class AttributionWindows:
    """Seconds an outcome may arrive after the prediction, per label (else `default`)."""

    default: float = DEFAULT_WINDOW_SECONDS
    per_label: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.default < 0 or any(v < 0 for v in self.per_label.values()):
            raise MonitorInputError("attribution windows must not be negative")

    def of(self, label: str) -> float:
        return self.per_label.get(label, self.default)


@dataclass(frozen=True)
class Attributed:
    """Settled predictions (the score table's columns — `ts, request_id, candidate_id, model,
    version, score`, and `experiment, arm, shadow` from a prediction log — then `label`) and
    the pending counts."""

    rows: pa.Table
    pending: dict[tuple[str, str], int]  # (model, version) -> predictions still in their window


def attribute(
    scores: pa.Table,
    outcomes: pa.Table,
    targets: Mapping[str, Target],
    windows: AttributionWindows,
    as_of: float,
) -> Attributed:
    """Label every logged prediction whose outcome is settled by `as_of` (unix seconds)."""
    unknown = sorted(set(scores["model"].to_pylist()) - set(targets))
    if unknown:
        raise MonitorInputError(
            f"no label is known for model(s) {unknown}; known: {sorted(targets)}"
        )
    pieces: list[pa.Table] = []
    pending: dict[tuple[str, str], int] = {}
    for model, target in sorted(targets.items()):
        subset = scores.filter(pc.equal(scores["model"], model))
        if not subset.num_rows:
            continue
        settled, waiting = _attribute_model(subset, outcomes, target, windows, as_of)
        pieces.append(settled)
        versions = waiting.to_numpy(zero_copy_only=False)
        for version in np.unique(versions):
            pending[(model, str(version))] = int(np.sum(versions == version))
    # Every column of the score table is kept (experiment and arm included), then the label.
    columns = [*scores.column_names, "label"]
    if not pieces:
        empty = {n: pa.array([], scores.schema.field(n).type) for n in columns[:-1]}
        return Attributed(pa.table({**empty, "label": pa.array([], pa.int8())}), pending)
    return Attributed(pa.concat_tables(p.select(columns) for p in pieces), pending)


def _attribute_model(
    scores: pa.Table,
    outcomes: pa.Table,
    target: Target,
    windows: AttributionWindows,
    as_of: float,
) -> tuple[pa.Table, pa.ChunkedArray]:
    """(settled rows with `label`, versions of pending rows) for one model."""
    ts = scores["ts"].to_numpy()
    hit, closed = _in_window(scores, outcomes, target.label, ts + windows.of(target.label), as_of)
    keep = hit | closed
    if target.where is not None:
        where_hit, where_closed = _in_window(
            scores, outcomes, target.where, ts + windows.of(target.where), as_of
        )
        # Judged only where the condition happened; undecided while its own window is open.
        keep &= where_hit
        waiting = (~where_hit & ~where_closed) | (where_hit & ~keep)
    else:
        waiting = ~keep
    settled = scores.filter(pa.array(keep)).append_column(
        "label", pa.array(hit[keep].astype(np.int8))
    )
    return settled, scores.filter(pa.array(waiting))["version"]


def _in_window(
    scores: pa.Table, outcomes: pa.Table, label: str, deadline: np.ndarray, as_of: float
) -> tuple[np.ndarray, np.ndarray]:
    """(positive event by the row's deadline, deadline passed) per prediction row."""
    events = first_positive_ts(outcomes, label)
    keyed = scores.select(list(KEY)).append_column("_row", pa.array(np.arange(scores.num_rows)))
    joined = keyed.join(events, keys=list(KEY), join_type="left outer")
    event_ts = np.full(scores.num_rows, np.nan)
    rows = joined["_row"].to_numpy()
    event_ts[rows] = pc.fill_null(joined["event_ts"], np.nan).to_numpy()
    hit = event_ts <= deadline  # NaN (no event) compares False
    closed = as_of >= deadline
    return hit, closed
