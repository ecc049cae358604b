"""`control tune --executor ray`: trials as Ray tasks, the study and its pruner on the driver.

The Ray tests share one local Ray instance (2 CPUs) started once for the module; the command
under test finds it running and uses it. "Ray missing" is a real subprocess of `control`
whose `import ray` fails (a `ray` package on PYTHONPATH that raises ImportError).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bidscore.registry import open_registry
from control.cli.app import app
from control.tuning.run import TuneRequest, prepare
from control.tuning.search import SearchOptions, run_search
from features.catalog import load
from tests.control.tuning_data import SPECS, write_logs

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)
runner = CliRunner()
SMALL = ("--specs", SPECS)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(tmp_path_factory.mktemp("tune-ray") / "logs.parquet", rows=3000, seed=7)


# --- no Ray running (these come first: a running Ray is reused whatever the address) --


def _no_ray_env(tmp_path: Path) -> dict[str, str]:
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIDSCORE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(shim.parent), str(REPO)])
    env["BIDSCORE_HOME"] = str(tmp_path / "home")
    env["COLUMNS"] = "200"
    return env


def test_tune_without_ray_is_one_line_and_saves_nothing(tmp_path, logs):
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    done = subprocess.run(
        [
            sys.executable, "-m", "control", "tune", "--model", "ctr", "--data", str(logs),
            "--trials", "2", "--executor", "ray", "--save", "--registry", registry, *SMALL,
        ],
        env=_no_ray_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    _one_line(done.stderr, "error: --executor ray needs Ray, which is not installed")
    assert open_registry(registry, create=True).get_params("ctr") is None


def test_tune_on_an_unreachable_cluster_is_one_line_and_saves_nothing(tmp_path, logs, free_port):
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    address = f"ray://127.0.0.1:{free_port()}"
    result = runner.invoke(
        app,
        [
            "tune", "--model", "ctr", "--data", str(logs), "--trials", "2",
            "--executor", address, "--save", "--registry", registry, *SMALL,
        ],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    _one_line(result.stderr, f"error: cannot reach the Ray cluster at {address} within 5s")
    assert open_registry(registry, create=True).get_params("ctr") is None


# --- on a local Ray instance -------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[object]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()


def _one_line(stderr: str, prefix: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(prefix), lines[0]


@pytest.mark.ray
def test_ray_trials_one_at_a_time_equal_the_local_search(ray_instance, logs):
    from control.tuning.distributed import run_search_ray  # noqa: PLC0415

    catalog = load(SPECS)
    options = SearchOptions(trials=10, seed=5, threads=1, workers=1)
    request = TuneRequest(model="ctr", data=[str(logs)], options=options)
    ready = prepare(request, catalog, arrays=True)
    options = dataclasses.replace(options, fixed=ready.fixed)
    local = run_search(ready.algorithm, ready.folds, options)
    seen: list[tuple[int, str]] = []
    remote = run_search_ray(
        ready.algorithm,
        ready.arrays,
        options,
        ray_instance,
        on_trial=lambda record, _best: seen.append((record.number, record.state)),
    )
    strip = [
        (t.number, t.params, t.valid_logloss, t.epochs, t.best_epoch, t.state) for t in local.trials
    ]
    assert [
        (t.number, t.params, t.valid_logloss, t.epochs, t.best_epoch, t.state)
        for t in remote.trials
    ] == strip
    # The pruner stopped trials on Ray as it did here (same epochs trained, see above).
    assert any(t.state == "pruned" for t in remote.trials), strip
    assert remote.params == local.params
    assert remote.valid_logloss == local.valid_logloss
    assert remote.model.checksum == local.model.checksum
    assert seen == [(t.number, t.state) for t in remote.trials]


@pytest.mark.ray
def test_tune_cli_on_ray_runs_trials_in_parallel(ray_instance, logs, tmp_path):
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    result = runner.invoke(
        app,
        [
            "tune", "--model", "ctr", "--data", str(logs), "--trials", "4",
            "--executor", "ray", "--workers", "2", "--save", "--registry", registry,
            "--json", *SMALL,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["executor"] == {"name": "ray", "workers": 2}
    assert out["study"]["trials"] == 4
    assert out["saved"] is True
    saved = open_registry(registry).get_params("ctr")
    assert saved is not None
    assert saved["study"]["valid_logloss"] == out["valid_logloss"]
