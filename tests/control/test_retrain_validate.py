"""The data checks that stop a retraining run before training."""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa

from control.retrain.validate import (
    DayStats,
    ValidationPolicy,
    check_drift,
    day_stats,
    validate,
)

POLICY = ValidationPolicy()
DAY = date(2026, 11, 1)


def days(rows: list[int], positives: list[int] | None = None, missing=None) -> list[DayStats]:
    positives = positives or [r // 20 for r in rows]
    missing = missing or [{"app_id": 0.0, "device_os": 0.01}] * len(rows)
    return [
        DayStats(DAY + timedelta(days=i), r, p, m)
        for i, (r, p, m) in enumerate(zip(rows, positives, missing, strict=True))
    ]


def failed(report) -> list[str]:
    return [f"{c.name}:{c.subject}" for c in report.failures]


def test_steady_data_passes():
    report = validate(days([1000, 980, 1010, 995]), [1000, 1000], "click", POLICY)
    assert failed(report) == []
    assert report.summary().startswith("all checks passed")


def test_row_count_drop_beyond_the_fraction_fails_and_names_the_day():
    report = validate(days([1000, 1000, 1000, 500]), [], "click", POLICY)
    assert failed(report) == ["row_count:2026-11-04"]
    assert "50% of the trailing average 1000" in report.summary()
    # a drop inside the tolerance passes; a looser policy lets the halved day through
    assert failed(validate(days([1000, 1000, 1000, 750]), [], "click", POLICY)) == []
    loose = ValidationPolicy(max_row_drop=0.6)
    assert failed(validate(days([1000, 1000, 1000, 500]), [], "click", loose)) == []


def test_trailing_average_uses_history_before_the_window():
    report = validate(days([400]), [1000, 1000], "click", POLICY)
    assert failed(report) == ["row_count:2026-11-01"]


def test_window_with_one_label_value_fails():
    report = validate(days([100, 100], positives=[0, 0]), [], "click", POLICY)
    assert failed(report) == ["label_rate:window"]
    assert "click=1" in report.summary()


def test_label_rate_swing_warns_but_does_not_stop():
    report = validate(days([1000, 1000, 1000], positives=[50, 50, 150]), [], "click", POLICY)
    assert failed(report) == []
    assert [c.subject for c in report.warnings] == ["2026-11-03"]


def test_feature_suddenly_all_missing_fails():
    missing = [{"app_id": 0.0}, {"app_id": 0.0}, {"app_id": 1.0}]
    report = validate(days([100, 100, 100], missing=missing), [], "click", POLICY)
    assert failed(report) == ["missing:app_id@2026-11-03"]


def test_feature_always_missing_in_production_profile_does_not_fail():
    missing = [{"carrier": 1.0}, {"carrier": 1.0}]
    report = validate(
        days([100, 100], missing=missing), [], "click", POLICY, baseline_missing={"carrier": 1.0}
    )
    assert failed(report) == []


def test_psi_alarm_warns_by_default_and_fails_when_asked():
    psi = {"device_os": 0.6, "app_id": 0.02, "country": 0.15}
    statuses = {c.subject: c.status for c in check_drift(psi, POLICY)}
    assert statuses == {"device_os": "warn", "app_id": "pass", "country": "warn"}
    strict = ValidationPolicy(fail_on_drift=True)
    report = validate(days([100, 100]), [], "click", strict, psi=lambda: psi)
    assert failed(report) == ["psi:device_os"]


def test_day_stats_counts_nulls_and_empty_strings_as_missing():
    table = pa.table(
        {
            "request_id": ["a", "b", "c", "d"],
            "app_id": ["x", "", None, "y"],
            "bid_floor": [0.1, None, 0.3, 0.4],
            "click": [1, 0, 0, 1],
        }
    )
    stats = day_stats(DAY, table, "click")
    assert (stats.rows, stats.positives) == (4, 2)
    assert stats.missing == {"app_id": 0.5, "bid_floor": 0.25}


def test_report_json_keeps_only_interesting_checks():
    report = validate(days([1000, 1000, 1000, 500]), [], "click", POLICY)
    data = report.to_json()
    assert data["passed"] is False
    assert data["failed"] == ["row_count:2026-11-04"]
    assert all(c["status"] != "pass" for c in data["checks"])
    assert data["checks_passed"] > 0
