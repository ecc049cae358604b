"""`control retrain --warm-start` and `--on-disk` on generated daily partitions (SQLite + file
store): the second day's run starts from production and records it as the parent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bidscore.registry import open_registry
from control.cli.app import app
from tests.control.retrain_data import MODEL, daily_logs

pytestmark = pytest.mark.timeout(300)

runner = CliRunner()


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return daily_logs(tmp_path_factory, "plain", days=10)


def retrain(urls: list[str], data: Path, *args: str) -> tuple[int, dict, str]:
    result = runner.invoke(
        app, ["retrain", *MODEL, "--data", str(data), *urls, "--json", "--window", "3d", *args]
    )
    run = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, run, result.stderr


def test_retrain_warm_starts_from_production_on_disk(days: Path, tmp_path: Path) -> None:
    urls = ["--registry", f"sqlite:///{tmp_path / 'r.db'}", "--store", f"file://{tmp_path / 'a'}"]
    # No production version yet: a cold start, said so, no parent.
    code, run, err = retrain(urls, days, "--date", "2026-11-05", "--warm-start")
    assert code == 0, err
    train = next(s for s in run["steps"] if s["name"] == "train")["detail"]
    assert train["parent_version"] is None
    registry = open_registry(urls[1])
    first = run["version"]
    assert registry.get_version("ctr", first).manifest.parent_version is None
    assert registry.get_alias("ctr", "production").version == first

    code, run, err = retrain(urls, days, "--date", "2026-11-06", "--warm-start", "--on-disk")
    assert code == 0, err
    train = next(s for s in run["steps"] if s["name"] == "train")["detail"]
    assert train["parent_version"] == first
    assert train["prepared"]["storage"] == "disk"
    assert run["inputs"]["warm_start"] is True
    manifest = registry.get_version("ctr", run["version"]).manifest
    assert manifest.parent_version == first
    assert manifest.data["prepared"]["storage"] == "disk"
