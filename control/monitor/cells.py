"""Monitoring results as table text: the terminal tables of `control monitor` and the HTML
report (`report`) take their columns and cells from here, so both show the same numbers the
same way.
"""

from __future__ import annotations

import math
from typing import Protocol

from control.monitor.offline import VersionMetrics

ACCURACY_COLUMNS = ("logloss", "AUC", "NE", "calibration")
VERSION_COLUMNS = ("version", "created", "rows", "valid rows", "positives", *ACCURACY_COLUMNS)


class Accuracy(Protocol):
    """What offline (`VersionMetrics`) and online (`BucketMetrics`) results both measure."""

    @property
    def logloss(self) -> float: ...
    @property
    def auc(self) -> float: ...
    @property
    def ne(self) -> float: ...
    @property
    def calibration(self) -> float: ...


def metric_text(value: float, digits: int = 4) -> str:
    """A metric to `digits` decimals; NaN (undefined, e.g. AUC over one label value) is "-"."""
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def accuracy_cells(m: Accuracy) -> list[str]:
    """The cells under `ACCURACY_COLUMNS`."""
    return [
        metric_text(m.logloss),
        metric_text(m.auc),
        metric_text(m.ne),
        metric_text(m.calibration, 3),
    ]


def version_cells(v: VersionMetrics, mark: str = "") -> list[str]:
    """The cells under `VERSION_COLUMNS`; `mark` is appended to the version (a flag marker)."""
    return [
        v.version + mark,
        v.created_at[:19],
        f"{v.rows:,}",
        f"{v.valid_rows:,}",
        f"{v.positives:,}",
        *accuracy_cells(v),
    ]
