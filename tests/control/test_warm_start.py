"""Warm start (`control train --warm-start`, `control retrain --warm-start`) and out-of-core
training (`--on-disk`, `--memory-budget`) through the real CLI and library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bidscore.registry import open_registry
from control.cli.app import app
from control.datagen import write_dataset
from control.errors import WarmStartError
from control.prepared import parse_budget
from control.training import load_data, train_tables

runner = CliRunner()
ROWS_PER_DAY = 8_000
# LR keeps the ctr spec's fingerprint and hash bits at a 4 MB model (its FFM is 105 MB).
LR = ["--algo", "lr"]


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two consecutive generated days of logs."""
    out = tmp_path_factory.mktemp("warm") / "logs"
    write_dataset(out, rows=ROWS_PER_DAY, seed=21, days=2)
    return sorted(out.glob("dt=*"))


@pytest.fixture
def urls(tmp_path: Path) -> list[str]:
    return ["--registry", f"sqlite:///{tmp_path / 'r.db'}", "--store", f"file://{tmp_path / 'a'}"]


class Curve:
    """Records the validation logloss of every epoch."""

    def __init__(self) -> None:
        self.valid: list[float] = []

    def stage(self, name: str) -> None:
        pass

    def epoch(self, epoch: int, epochs: int, train_ll: float, valid_ll: float | None) -> None:
        assert valid_ll is not None
        self.valid.append(valid_ll)

    def transfer(self, name: str, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass


def epochs_to_reach(curve: list[float], target: float) -> int:
    return next(i + 1 for i, ll in enumerate(curve) if ll <= target)


def test_warm_start_from_yesterday_converges_in_fewer_epochs(days: list[Path]) -> None:
    params = {"epochs": 8, "alpha": 0.05}
    yesterday = train_tables("ctr", load_data("ctr", [days[0]], seed=1), algo="lr", params=params)
    today = load_data("ctr", [days[1]], seed=1)
    cold, warm = Curve(), Curve()
    train_tables("ctr", today, algo="lr", params=params, observer=cold)
    trained = train_tables(
        "ctr",
        today,
        algo="lr",
        params=params,
        observer=warm,
        init=yesterday.model,
        parent_version="7",
    )
    target = min(cold.valid)
    cold_epochs = epochs_to_reach(cold.valid, target)
    assert cold_epochs > 1, cold.valid  # otherwise there is nothing to be faster at
    assert epochs_to_reach(warm.valid, target) < cold_epochs, (cold.valid, warm.valid)
    assert trained.manifest().parent_version == "7"
    assert trained.params["warm_start"] == "7"


def test_a_mismatched_parent_is_refused_before_training(days: list[Path]) -> None:
    data = load_data("ctr", [days[0]], seed=1)
    lr = train_tables("ctr", data, algo="lr", params={"epochs": 1})
    with pytest.raises(WarmStartError, match="algorithm is lr, this training's ffm"):
        train_tables("ctr", data, algo="ffm", params={"epochs": 1}, init=lr.model)


def test_cli_warm_start_records_the_parent_and_refuses_a_mismatch(
    days: list[Path], urls: list[str]
) -> None:
    first = invoke("train", "--model", "ctr", "--data", str(days[0]), *LR, "--epochs", "2", *urls)
    assert first.exit_code == 0, first.output
    assert invoke("promote", "ctr", "1", *urls).exit_code == 0
    args = ["train", "--model", "ctr", "--data", str(days[1]), "--epochs", "2", *urls, "--json"]
    warm = invoke(*args, *LR, "--warm-start", "production")
    assert warm.exit_code == 0, warm.output
    out = json.loads(warm.stdout)
    assert (out["version"], out["parent_version"]) == ("2", "1")
    registry = open_registry(urls[1])
    assert registry.get_version("ctr", "2").manifest.parent_version == "1"
    assert registry.get_version("ctr", "1").manifest.parent_version is None
    # Another algorithm than the parent's: one line, non-zero exit, nothing registered.
    refused = invoke(*args, "--algo", "ffm", "--warm-start", "1")
    assert refused.exit_code != 0
    assert "cannot warm-start" in refused.output
    assert "algorithm is lr" in refused.output
    assert refused.stderr.strip().splitlines() == [
        "error: cannot warm-start from ctr version 1: its algorithm is lr, this training's ffm"
    ]
    missing = invoke(*args, *LR, "--warm-start", "9")
    assert missing.exit_code != 0
    assert "cannot warm-start ctr from 9" in missing.output
    assert [v.version for v in registry.list_versions("ctr")] == ["1", "2"]


def test_on_disk_and_memory_budget_choose_the_path_and_say_why(
    days: list[Path], urls: list[str]
) -> None:
    base = ["train", "--model", "ctr", "--data", str(days[0]), *LR, "--epochs", "2", *urls]
    forced = invoke(*base, "--on-disk")
    assert forced.exit_code == 0, forced.output
    assert "on disk: --on-disk was given" in forced.output
    small = invoke(*base, "--memory-budget", "100K")
    assert small.exit_code == 0, small.output
    assert "exceed the memory budget" in small.output
    roomy = invoke(*base, "--memory-budget", "8G")
    assert roomy.exit_code == 0, roomy.output
    assert "in memory: the prepared rows" in roomy.output
    registry = open_registry(urls[1])
    prepared = [registry.get_version("ctr", v).manifest.data["prepared"] for v in "123"]
    assert [p["storage"] for p in prepared] == ["disk", "disk", "memory"]
    # Out of core, rows are prepared one shard per input file (as on the Ray executor)
    assert prepared[1]["shards"] == 1
    bad = invoke(*base, "--memory-budget", "lots")
    assert bad.exit_code != 0
    assert "--memory-budget must be" in bad.output


def test_on_disk_model_matches_in_memory_quality(days: list[Path]) -> None:
    data = load_data("ctr", [days[0]], seed=1)
    params = {"epochs": 3}
    mem = train_tables("ctr", data, algo="lr", params=params)
    disk = train_tables("ctr", data, algo="lr", params=params, on_disk=True)
    assert disk.data["prepared"]["storage"] == "disk"
    assert disk.metrics.logloss == pytest.approx(mem.metrics.logloss, abs=0.005)


def test_parse_budget() -> None:
    assert parse_budget("512M") == 512 << 20
    assert parse_budget("2GiB") == 2 << 30
    assert parse_budget("1000") == 1000
    assert parse_budget("auto") > 0
