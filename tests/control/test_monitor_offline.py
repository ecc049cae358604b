"""Offline metrics across versions: numeric version order, regressions beyond a tolerance
flagged against the previous version, and the CLI table and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bidscore.manifest import Manifest
from bidscore.registry import open_registry
from bidscore.settings import default_registry_url
from control.cli.app import app
from control.monitor.offline import OfflineTolerances, offline_report


def manifest(logloss: float, auc: float, rows: int) -> dict:
    return {
        "metrics": {
            "logloss": logloss,
            "auc": auc,
            "ne": logloss / 0.14,
            "calibration": 1.02,
            "rows": rows // 10,
            "positives": rows // 300,
        },
        "data": {"rows": rows},
    }


@pytest.fixture
def registry(bidscore_home: Path):
    return open_registry(default_registry_url())


def register_all(registry, *manifests: dict) -> None:
    for m in manifests:
        registry.register_version("ctr", Manifest.from_json(m), "file:///nowhere")


def test_versions_in_numeric_order_with_regressions_flagged(registry) -> None:
    register_all(
        registry,
        manifest(0.130, 0.750, 10_000),  # 1
        *[manifest(0.130, 0.750, 10_000)] * 8,  # 2..9: steady
        manifest(0.140, 0.730, 10_000),  # 10: logloss +7.7%, AUC -2.7%
        manifest(0.140, 0.729, 4_000),  # 11: rows -60%; AUC -0.1% is within tolerance
    )
    report = offline_report("ctr", registry.list_versions("ctr"))
    assert [v.version for v in report.versions] == [str(i) for i in range(1, 12)]
    found = {(f.version, f.check) for f in report.flags}
    assert found == {("10", "offline.logloss"), ("10", "offline.auc"), ("11", "offline.rows")}
    (rows,) = [f for f in report.flags if f.check == "offline.rows"]
    assert rows.value == pytest.approx(0.6)
    assert "10,000 -> 4,000" in rows.message
    assert report.versions[-1].valid_rows == 400


def test_tolerances_are_configurable(registry) -> None:
    register_all(registry, manifest(0.130, 0.750, 10_000), manifest(0.140, 0.730, 9_000))
    strict = offline_report("ctr", registry.list_versions("ctr"), OfflineTolerances(rows_drop=0.05))
    assert {f.check for f in strict.flags} == {"offline.logloss", "offline.auc", "offline.rows"}
    lenient = OfflineTolerances(auc_drop=0.05, logloss_rise=0.1, rows_drop=0.5)
    assert offline_report("ctr", registry.list_versions("ctr"), lenient).flags == []


def test_missing_metrics_do_not_flag(registry) -> None:
    register_all(registry, {"metrics": {}}, manifest(0.2, 0.6, 100))
    report = offline_report("ctr", registry.list_versions("ctr"))
    assert report.flags == []
    assert report.versions[0].rows == 0


def test_offline_cli_table_and_json(registry) -> None:
    register_all(registry, manifest(0.130, 0.750, 10_000), manifest(0.130, 0.750, 5_000))
    runner = CliRunner()
    result = runner.invoke(app, ["monitor", "offline", "ctr", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [v["rows"] for v in data["versions"]] == [10_000, 5_000]
    assert [f["check"] for f in data["flags"]] == ["offline.rows"]

    table = runner.invoke(app, ["monitor", "offline", "ctr", "--rows-drop", "0.6"])
    assert table.exit_code == 0, table.output
    assert "10,000" in table.stdout
    assert "no flags" in table.stdout
