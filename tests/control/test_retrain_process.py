"""`control retrain` as real processes: killed mid-training and restarted, and two runs of
one model at once. Both backend pairs: SQLite + file store, DynamoDB + S3 on moto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from bidscore.registry import open_registry
from bidscore.store import open_store
from control.cli.app import app
from tests.control.retrain_data import MODEL, backend_urls, daily_logs

CONTROL = str(Path(sys.executable).parent / "control")
# Enough epochs that training lasts a few seconds on this data: long enough to be caught
# in the act, short enough for the suite.
SLOW = ["--param", "epochs=100"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def fortnight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return daily_logs(tmp_path_factory, "plain", days=10)


@pytest.fixture(params=["sqlite+file", pytest.param("dynamodb+s3", marks=pytest.mark.aws)])
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return backend_urls(request, tmp_path)


def command(backends: tuple[str, str], data: Path, *extra: str) -> list[str]:
    registry, store = backends
    return [
        "retrain", *MODEL, "--data", str(data), "--date", "2026-11-08",
        "--registry", registry, "--store", store, "--json", *extra,
    ]  # fmt: skip


def stop(proc: subprocess.Popen) -> None:
    """Never leave a run behind, whatever the test did."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def wait_for_step(registry_url: str, step: str, proc: subprocess.Popen, timeout: float = 60):
    """Poll the run record until the running run has started `step`."""
    registry = open_registry(registry_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for run in registry.list_runs("ctr"):
            steps = run.get("steps") or []
            if run["status"] == "running" and steps and steps[-1]["name"] == step:
                return run
        time.sleep(0.05)
    pytest.fail(f"no run reached step {step!r} within {timeout}s")


def test_killed_during_training_then_restarted_leaves_one_version(backends, fortnight):
    args = command(backends, fortnight, *SLOW, "--lock-ttl", "2")
    proc = subprocess.Popen([CONTROL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        killed = wait_for_step(backends[0], "train", proc)
        time.sleep(0.1)  # inside the train step, which lasts seconds
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        stop(proc)
    registry = open_registry(backends[0])
    store = open_store(backends[1])
    assert registry.list_versions("ctr") == []
    assert store.list_keys() == []

    # The dead run's lock outlives it by at most --lock-ttl; until then: "already running".
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(
            [CONTROL, *args], capture_output=True, text=True, timeout=180, check=False
        )
        if done.returncode != 75 or time.monotonic() > deadline:
            break
        assert "already running" in done.stderr
        time.sleep(0.5)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    # (100 epochs overfit, so a gate may hold the version: what matters here is that there is one)
    assert run["status"] == "succeeded"
    assert run["version"] == "1"
    assert run["key"] == killed["key"]

    versions = registry.list_versions("ctr")
    assert [v.version for v in versions] == ["1"]
    artifact = versions[0].manifest.key
    assert store.list_keys() == [artifact, f"{artifact}.json"]
    if backends[1].startswith("file://"):
        files = sorted(
            str(p.relative_to(backends[1][len("file://") :]))
            for p in Path(backends[1][len("file://") :]).rglob("*")
            if p.is_file()
        )
        assert files == [artifact, f"{artifact}.json"]  # no temp file left behind
    else:
        # list_keys hides temp objects; ask S3 itself that none was left behind
        bucket, _, rest = backends[1][len("s3://") :].partition("/")
        prefix, _, query = rest.partition("?")
        endpoint = query.split("endpoint_url=")[1].split("&")[0]
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        assert sorted(o["Key"] for o in listed) == [
            f"{prefix}/{artifact}",
            f"{prefix}/{artifact}.json",
        ]
    abandoned = registry.get_run(killed["run_id"])
    assert abandoned["status"] == "abandoned"
    # it died inside training: its last step never finished
    assert (abandoned["steps"][-1]["name"], abandoned["steps"][-1]["status"]) == (
        "train",
        "running",
    )


def test_two_concurrent_runs_one_proceeds_the_other_says_already_running(backends, fortnight):
    args = command(backends, fortnight, *SLOW)
    first = subprocess.Popen([CONTROL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_step(backends[0], "train", first)
        second = CliRunner().invoke(app, args)
        assert second.exit_code == 75
        assert second.stderr.strip().startswith("error: a retrain run for model 'ctr' is already")
        out, err = first.communicate(timeout=180)
    finally:
        stop(first)
    assert first.returncode == 0, err
    assert json.loads(out)["version"] == "1"
    registry = open_registry(backends[0])
    assert [v.version for v in registry.list_versions("ctr")] == ["1"]
    # the refused run never took the lock, so it left no record
    assert len(registry.list_runs("ctr")) == 1
