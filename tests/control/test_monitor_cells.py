"""Table text shared by the terminal tables and the HTML report: undefined metrics read "-",
counts get thousands separators, and every column has its cell."""

from __future__ import annotations

import math

import numpy as np

from control.monitor.cells import (
    ACCURACY_COLUMNS,
    VERSION_COLUMNS,
    accuracy_cells,
    metric_text,
    version_cells,
)
from control.monitor.offline import VersionMetrics
from control.monitor.online import bucket_metrics


def test_metric_text_rounds_and_shows_undefined_as_a_dash() -> None:
    assert metric_text(0.123456) == "0.1235"
    assert metric_text(1.0234, 3) == "1.023"
    assert metric_text(math.nan) == "-"


def test_version_cells_fill_every_column_and_carry_the_mark() -> None:
    v = VersionMetrics(
        model="ctr",
        version="12",
        created_at="2026-11-27T02:15:41.123456Z",
        logloss=0.14321,
        auc=math.nan,
        ne=0.91,
        calibration=1.02345,
        rows=1_234_567,
        valid_rows=123_456,
        positives=4_321,
    )
    cells = version_cells(v, " !")
    assert len(cells) == len(VERSION_COLUMNS)
    assert cells == [
        "12 !",
        "2026-11-27T02:15:41",
        "1,234,567",
        "123,456",
        "4,321",
        "0.1432",
        "-",
        "0.9100",
        "1.023",
    ]


def test_online_buckets_use_the_same_accuracy_cells() -> None:
    # One label value: AUC, NE, logloss and calibration are undefined, so every cell is "-".
    b = bucket_metrics(
        "ctr", "1", start=0.0, end=3600.0, labels=np.zeros(4), scores=np.full(4, 0.1)
    )
    assert accuracy_cells(b) == ["-"] * len(ACCURACY_COLUMNS)
