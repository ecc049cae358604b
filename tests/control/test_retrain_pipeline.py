"""`control retrain` end to end on generated daily partitions. The scenarios of issue 7 run on
both backend pairs (SQLite + file store, and DynamoDB + S3 on the moto server); option
handling and listings on SQLite only."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bidscore.registry import open_registry
from bidscore.store import open_store
from control.cli.app import app
from control.datagen import SHIFTED_FEATURES
from control.retrain.pipeline import RetrainRequest, run_retrain
from tests.control.retrain_data import MODEL, backend_urls, daily_logs

pytestmark = pytest.mark.timeout(300)

runner = CliRunner()


@pytest.fixture(scope="module")
def fortnight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return daily_logs(tmp_path_factory, "plain", days=10)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """From day index 7 (2026-11-08) on: SHIFTED_FEATURES move and the row count halves."""
    return daily_logs(tmp_path_factory, "shifted", days=10, shift_from_day=7, shrink_from_day=7)


@pytest.fixture(params=["sqlite+file", pytest.param("dynamodb+s3", marks=pytest.mark.aws)])
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return backend_urls(request, tmp_path)


@pytest.fixture
def sqlite(tmp_path: Path) -> tuple[str, str]:
    return f"sqlite:///{tmp_path / 'registry.db'}", f"file://{tmp_path / 'artifacts'}"


def retrain(backends: tuple[str, str], data: Path | str, *args: str) -> tuple[int, dict, str]:
    registry, store = backends
    result = runner.invoke(
        app,
        ["retrain", *MODEL, "--data", str(data), "--registry", registry,
         "--store", store, "--json", *args],
    )  # fmt: skip
    run = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, run, result.stderr


def test_first_run_promotes_and_a_second_run_is_a_noop(backends, fortnight):
    code, run, err = retrain(backends, fortnight, "--date", "2026-11-08")
    assert code == 0, err
    assert run["status"] == "succeeded"
    assert run["decision"]["action"] == "promoted"
    assert run["version"] == "1"
    assert [s["name"] for s in run["steps"]] == [
        "select", "validate", "train", "evaluate", "register", "promote",
    ]  # fmt: skip
    assert all(s["status"] == "ok" and s["seconds"] >= 0 for s in run["steps"])
    assert run["inputs"]["selection"]["train"] == {"start": "2026-11-01", "end": "2026-11-07"}
    assert run["comparison"]["champion"] is None
    assert run["comparison"]["holdout"]["start"] == "2026-11-08"

    registry = open_registry(backends[0])
    assert registry.get_alias("ctr", "production").version == "1"
    manifest = registry.get_version("ctr", "1").manifest
    assert manifest.retrain is not None
    assert manifest.comparison is not None
    assert manifest.retrain["train"] == {"start": "2026-11-01", "end": "2026-11-07"}
    assert manifest.comparison["challenger"]["metrics"]["auc"] > 0.6
    assert manifest.profile

    code, again, err = retrain(backends, fortnight, "--date", "2026-11-08")
    assert code == 0, err
    assert again["status"] == "noop"
    assert "nothing to do: version 1 was already registered" in again["decision"]["reason"]
    assert [v.version for v in registry.list_versions("ctr")] == ["1"]
    assert [r["run_id"] for r in registry.list_runs("ctr")] == [run["run_id"], again["run_id"]]

    # the next day compares the challenger with version 1 on day 9's logs
    code, day9, err = retrain(backends, fortnight, "--date", "2026-11-09")
    assert code == 0, err
    assert day9["version"] == "2"
    comparison = day9["comparison"]
    assert comparison["champion"]["version"] == "1"
    assert {r["metric"] for r in comparison["rows"]} == {"logloss", "auc", "ne", "calibration"}
    assert all(
        r["champion"] is not None and r["challenger"] is not None for r in comparison["rows"]
    )
    assert day9["decision"]["action"] in ("promoted", "held")


def test_shifted_and_shrunken_days_stop_the_run_at_validation(backends, shifted):
    # production is trained on the days before the shift
    code, first, err = retrain(backends, shifted, "--date", "2026-11-07", "--window", "6d")
    assert code == 0, err
    assert first["decision"]["action"] == "promoted"

    code, run, err = retrain(backends, shifted, "--date", "2026-11-09")
    assert code == 5, err
    assert run["status"] == "stopped"
    assert "row_count:2026-11-08" in run["decision"]["failed_checks"]
    assert "row_count" in run["decision"]["reason"]
    steps = {s["name"]: s["status"] for s in run["steps"]}
    assert steps == {
        "select": "ok", "validate": "failed", "train": "skipped", "evaluate": "skipped",
        "register": "skipped", "promote": "skipped",
    }  # fmt: skip
    # the shift itself is a warning (drift is a reason to retrain), on the shifted features only
    validation = next(s["detail"]["validation"] for s in run["steps"] if s["name"] == "validate")
    alarms = {
        c["subject"] for c in validation["checks"] if c["name"] == "psi" and c["value"] > 0.25
    }
    assert "device_os" in alarms
    assert alarms <= set(SHIFTED_FEATURES)
    registry = open_registry(backends[0])
    assert [v.version for v in registry.list_versions("ctr")] == ["1"]
    assert registry.get_alias("ctr", "production").version == "1"
    stored = registry.get_run(run["run_id"])
    assert stored["status"] == "stopped"
    assert stored["decision"]["failed_checks"] == run["decision"]["failed_checks"]


def test_worse_challenger_is_registered_but_not_promoted(backends, fortnight):
    code, _, err = retrain(backends, fortnight, "--date", "2026-11-08")
    assert code == 0, err
    code, run, err = retrain(backends, fortnight, "--date", "2026-11-09", "--param", "alpha=20")
    assert code == 0, err
    assert run["decision"]["action"] == "held"
    assert run["version"] == "2"
    assert "held by gate" in run["decision"]["reason"]
    assert any(g.startswith(("logloss", "auc")) for g in run["decision"]["gates"])
    assert [s["status"] for s in run["steps"] if s["name"] == "promote"] == ["skipped"]
    registry = open_registry(backends[0])
    assert registry.get_alias("ctr", "production").version == "1"
    assert registry.get_version("ctr", "2").manifest.params["alpha"] == 20


def test_no_auto_promote_registers_only(sqlite, fortnight):
    backends = sqlite
    code, run, err = retrain(backends, fortnight, "--date", "2026-11-08", "--no-auto-promote")
    assert code == 0, err
    assert run["decision"]["action"] == "registered"
    assert open_registry(backends[0]).get_alias("ctr", "production") is None


def test_dry_run_writes_nothing(sqlite, fortnight):
    backends = sqlite
    code, run, err = retrain(backends, fortnight, "--date", "2026-11-08", "--dry-run")
    assert code == 0, err
    assert run["decision"]["action"] == "dry-run"
    assert [s["name"] for s in run["steps"]] == ["select", "validate"]
    registry = open_registry(backends[0])
    assert registry.list_versions("ctr") == []
    assert registry.list_runs("ctr") == []
    assert open_store(backends[1]).list_keys() == []


def test_missing_partition_is_refused_with_one_line(sqlite, fortnight, tmp_path):
    backends = sqlite
    gappy = tmp_path / "gappy"
    gappy.mkdir()
    for day in sorted(fortnight.iterdir()):
        if day.name != "dt=2026-11-04":
            (gappy / day.name).symlink_to(day)
    code, run, err = retrain(backends, gappy, "--date", "2026-11-08")
    assert code == 1
    assert err.strip().splitlines() == [
        "error: missing or empty partitions in the window: 2026-11-04 (pass --allow-gaps to "
        "train anyway)"
    ]
    assert open_registry(backends[0]).list_versions("ctr") == []
    code, run, err = retrain(backends, gappy, "--date", "2026-11-08", "--allow-gaps", "--dry-run")
    assert code == 0, err
    assert run["inputs"]["selection"]["gaps"] == ["2026-11-04"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "week"], "--window must be a number of days"),
        (["--date", "8 Nov"], "--date must be YYYY-MM-DD"),
        (["--param", "eta"], "--param must be NAME=VALUE"),
        (["--param", "foo=1"], "unknown hyper-parameter 'foo'"),
        (["--param", "eta=1"], "lr has no hyper-parameter 'eta'"),
        (["--model", "xyz"], "unknown model 'xyz'"),
    ],
)
def test_bad_options_fail_with_one_line(sqlite, fortnight, args, message):
    backends = sqlite
    code, _, err = retrain(backends, fortnight, *args)
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert message in err


def test_runs_list_and_show(sqlite, fortnight):
    backends = sqlite
    code, run, err = retrain(backends, fortnight, "--date", "2026-11-08")
    assert code == 0, err
    wide = {"COLUMNS": "160"}
    listed = runner.invoke(app, ["runs", "list", "ctr", "--registry", backends[0]], env=wide)
    assert listed.exit_code == 0
    assert run["run_id"] in listed.stdout
    assert "promoted" in listed.stdout
    shown = runner.invoke(app, ["runs", "show", run["run_id"], "--registry", backends[0]], env=wide)
    assert shown.exit_code == 0
    for text in ("select", "validate", "train", "evaluate", "register", "promote", "holdout"):
        assert text in shown.stdout
    as_json = runner.invoke(
        app, ["runs", "show", run["run_id"], "--registry", backends[0], "--json"]
    )
    assert json.loads(as_json.stdout)["run_id"] == run["run_id"]
    missing = runner.invoke(app, ["runs", "show", "nope", "--registry", backends[0]])
    assert missing.exit_code != 0
    assert "unknown run 'nope'" in missing.stderr


def test_registered_without_promotion_is_promoted_by_the_next_auto_run(sqlite, fortnight):
    code, first, err = retrain(sqlite, fortnight, "--date", "2026-11-08", "--no-auto-promote")
    assert code == 0, err
    assert first["decision"]["action"] == "registered"
    code, again, err = retrain(sqlite, fortnight, "--date", "2026-11-08", "--no-auto-promote")
    assert code == 0, err
    assert again["decision"]["action"] == "noop"
    # the same window with auto-promote: no new training, the recorded comparison decides
    code, run, err = retrain(sqlite, fortnight, "--date", "2026-11-08")
    assert code == 0, err
    assert run["decision"]["action"] == "promoted"
    assert [s["status"] for s in run["steps"][1:5]] == ["skipped"] * 4
    registry = open_registry(sqlite[0])
    assert [v.version for v in registry.list_versions("ctr")] == ["1"]
    assert registry.get_alias("ctr", "production").version == "1"


def test_manual_promotion_during_the_run_is_never_overwritten(sqlite, fortnight):
    registry_url, store_url = sqlite
    code, _, err = retrain(sqlite, fortnight, "--date", "2026-11-08")
    assert code == 0, err
    registry = open_registry(registry_url)

    def operator_promotes_meanwhile(line: str) -> None:
        # An operator re-promotes v1 by hand while the run is between register and promote.
        if line.startswith("register:"):
            registry.set_alias(
                "ctr", "production", "1", expected_generation=1, actor="alice", reason="manual"
            )

    request = RetrainRequest(
        model="ctr", data_root=str(fortnight), day=date(2026, 11, 9), algo="lr"
    )
    result = run_retrain(
        request, registry, open_store(store_url), notify=operator_promotes_meanwhile
    )
    assert result.exit_code == 0
    assert result.run["decision"]["action"] == "held"
    assert "moved during the run" in result.run["decision"]["reason"]
    alias = registry.get_alias("ctr", "production")
    assert (alias.version, alias.generation, alias.updated_by) == ("1", 2, "alice")
    assert [v.version for v in registry.list_versions("ctr")] == ["1", "2"]


@pytest.mark.aws
def test_data_root_on_s3(moto_server, aws_backends, fortnight):
    """The same run with the daily partitions under an s3:// prefix."""
    import boto3  # noqa: PLC0415 - only this test talks to S3 directly

    bucket = aws_backends[1].split("/")[2]
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    for part in sorted(fortnight.glob("dt=*/part-*.parquet")):
        s3.upload_file(str(part), bucket, f"logs/{part.parent.name}/{part.name}")
    root = f"s3://{bucket}/logs?endpoint_url={moto_server}&region=us-east-1"
    code, run, err = retrain(aws_backends, root, "--date", "2026-11-08")
    assert code == 0, err
    assert run["decision"]["action"] == "promoted"
    assert [p["rows"] for p in run["inputs"]["selection"]["partitions"]] == [10_000] * 8
