"""Feature drift: PSI between training profiles across versions and against serving traffic,
the row-count trend, and the promotion gate, on generated data with a planted shift."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from bidscore.manifest import Manifest
from bidscore.registry import open_registry
from control import datagen
from control.cli.app import app
from control.monitor.drift import (
    compare_profiles,
    drift_report,
    promotion_gate,
    psi_by_feature,
    serving_drift,
)
from control.monitor.predictions import read_predictions
from control.monitor.psi import psi
from control.profile import profile_column, profile_table
from tests.control.monitor_data import days_of, feature_types, register, write_prediction_log

SHIFT_DAY = 2
ROWS_PER_DAY = 5000


@pytest.fixture(scope="module")
def shifted_days():
    """Four days of logs; the distribution of SHIFTED_FEATURES changes on day 2."""
    table = datagen.generate(ROWS_PER_DAY, seed=11, days=4, shift_from_day=SHIFT_DAY)
    return days_of(table)


@pytest.fixture
def registry(tmp_path: Path):
    return open_registry(f"sqlite:///{tmp_path / 'registry.db'}")


def test_identical_profiles_have_zero_psi(shifted_days) -> None:
    profile = profile_table(shifted_days[0], feature_types())
    assert all(
        value == pytest.approx(0.0, abs=1e-12)
        for value in psi_by_feature(profile, profile).values()
    )


def test_shift_is_an_alarm_on_the_shifted_features_only(shifted_days, registry) -> None:
    # v1 and v2 trained before the shift day, v3 after it.
    register(registry, "ctr", shifted_days[0])
    register(registry, "ctr", shifted_days[1])
    register(registry, "ctr", shifted_days[SHIFT_DAY])
    report = drift_report("ctr", registry.list_versions("ctr"))

    before, after = report.comparisons
    assert (before.baseline, before.version, after.baseline, after.version) == ("1", "2", "2", "3")
    assert not [f for f in report.flags if f.version == "2"]

    profiled_features = set(feature_types())
    shifted = set(datagen.SHIFTED_FEATURES) & profiled_features
    assert shifted == {"device_os", "device_model", "app_id", "app_category", "publisher_id"}
    alarms = {f.subject for f in report.flags if f.check == "drift.psi" and f.severity == "alarm"}
    assert alarms == shifted
    for feature in after.features:
        if feature.feature in shifted:
            assert feature.psi > 0.25, feature
        else:
            assert feature.psi < 0.1, feature  # not even a flag
    assert "ts" not in {f.feature for f in after.features}  # time always moves; not drift


def test_new_and_vanished_top_values_are_reported(shifted_days) -> None:
    drift = {
        f.feature: f
        for f in compare_profiles(
            profile_table(shifted_days[1], feature_types()),
            profile_table(shifted_days[SHIFT_DAY], feature_types()),
        )
    }
    assert drift["app_id"].new_values
    assert drift["app_id"].vanished_values
    assert drift["app_id"].value_share > 0.05
    assert drift["country"].new_values == drift["country"].vanished_values == []


def test_training_data_shrinking_by_half_is_flagged(registry) -> None:
    table = datagen.generate(4000, seed=5, days=2, shrink_from_day=1, shrink_factor=0.5)
    full, half = days_of(table)
    assert half.num_rows == full.num_rows // 2
    register(registry, "ctr", full)
    register(registry, "ctr", half)
    report = drift_report("ctr", registry.list_versions("ctr"))
    assert report.rows == [("1", 4000), ("2", 2000)]
    (rows_flag,) = [f for f in report.flags if f.check == "drift.rows"]
    assert rows_flag.version == "2"
    assert rows_flag.value == pytest.approx(0.5)
    # The surviving rows are distributed as before: no PSI alarm.
    assert not [f for f in report.flags if f.severity == "alarm"]


def test_missing_rate_change_is_flagged(shifted_days, registry) -> None:
    day = shifted_days[0]
    register(registry, "ctr", day)
    # A broken upstream: 30% of rows lose their connection type.
    broken = pa.array([i % 10 < 3 for i in range(day.num_rows)])
    nulls = pc.if_else(broken, pa.scalar(None, pa.string()), day["connection_type"])
    register(
        registry,
        "ctr",
        day.set_column(day.schema.get_field_index("connection_type"), "connection_type", nulls),
    )
    report = drift_report("ctr", registry.list_versions("ctr"))
    (missing,) = [f for f in report.flags if f.check == "drift.missing"]
    assert missing.subject == "connection_type"
    assert missing.value == pytest.approx(0.3, abs=0.01)
    psi_flags = {f.subject for f in report.flags if f.check == "drift.psi"}
    assert psi_flags == {"connection_type"}  # the missing-value bin moved


def test_numeric_psi_reads_a_histogram_with_other_edges(shifted_days) -> None:
    price = shifted_days[0]["bid_price"]
    same = profile_column(shifted_days[1]["bid_price"], "float")
    tripled = profile_column(pc.multiply(shifted_days[1]["bid_price"], 3.0), "float")
    reference = profile_column(price, "float")
    assert psi(reference, same) < 0.05
    assert psi(reference, tripled) > 0.25
    # With identical edges the counts are used as they are.
    assert psi(reference, reference) == 0.0
    assert psi(reference, profile_column(pa.nulls(10, pa.float64()), "float")) > 1.0


def test_promotion_gate_refuses_a_shifted_version(shifted_days) -> None:
    types = feature_types()
    old = Manifest(version="1", profile=dict(profile_table(shifted_days[1], types)))
    same = Manifest(version="2", profile=dict(profile_table(shifted_days[0], types)))
    shifted = Manifest(version="3", profile=dict(profile_table(shifted_days[3], types)))
    assert promotion_gate(old, same) == []
    reasons = promotion_gate(old, shifted)
    assert len(reasons) == 5
    assert all(r.startswith("drift alarm: ") and "against v1" in r for r in reasons)
    assert any("app_id" in r for r in reasons)
    assert promotion_gate(Manifest(version="1"), shifted) == []  # nothing to compare with


def test_serving_traffic_is_compared_with_training_data(
    shifted_days, registry, tmp_path: Path
) -> None:
    version = register(registry, "ctr", shifted_days[0])
    columns = dict(
        context_columns=tuple(c for c in datagen.CONTEXT_COLUMNS),
        candidate_columns=tuple(datagen.CANDIDATE_COLUMNS),
        include_features=True,
    )
    calm, shifted = shifted_days[1], shifted_days[3]
    write_prediction_log(tmp_path / "calm", calm, [0.03] * calm.num_rows, **columns)
    write_prediction_log(tmp_path / "shifted", shifted, [0.03] * shifted.num_rows, **columns)

    calm_log = read_predictions([str(tmp_path / "calm")])
    assert calm_log.features is not None
    assert calm_log.features.num_rows == calm.num_rows
    comparison, flags = serving_drift(version, calm_log.features)
    assert comparison.version == "serving"
    assert comparison.rows == calm.num_rows
    assert [f for f in flags if f.check == "drift.psi"] == []

    comparison, flags = serving_drift(
        version, read_predictions([str(tmp_path / "shifted")]).features
    )
    alarms = {f.subject for f in flags if f.severity == "alarm"}
    assert alarms == set(datagen.SHIFTED_FEATURES) & set(feature_types())


def test_drift_cli_prints_json_and_tables(shifted_days, registry, tmp_path: Path) -> None:
    register(registry, "ctr", shifted_days[1])
    register(registry, "ctr", shifted_days[SHIFT_DAY])
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    runner = CliRunner()
    result = runner.invoke(app, ["monitor", "drift", "ctr", "--registry", url, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rows"] == [
        {"version": "1", "rows": ROWS_PER_DAY},
        {"version": "2", "rows": ROWS_PER_DAY},
    ]
    assert {f["subject"] for f in data["flags"] if f["severity"] == "alarm"} >= {
        "app_id",
        "device_os",
    }

    table = runner.invoke(app, ["monitor", "drift", "ctr", "--registry", url])
    assert table.exit_code == 0, table.output
    assert "app_id" in table.stdout
    assert "alarm" in table.stdout

    missing = runner.invoke(app, ["monitor", "drift", "nope", "--registry", url])
    assert missing.exit_code == 1
    assert "no registered versions" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
