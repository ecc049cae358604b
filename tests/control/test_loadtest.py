"""`control loadtest` and `control.loadtest`: real ghz against real servers on 127.0.0.1.

Servers: the echo server of bench/ (constant reply, no models needed) and the scoring server
(`python -m control serve`) on tiny models trained here and published to a private registry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from google.protobuf import json_format
from typer.testing import CliRunner

import rust_core
from bidscore.manifest import Manifest
from bidscore.registry import open_registry
from bidscore.store import open_store
from bidscore.v1 import scorer_pb2
from control import datagen
from control.cli.app import app
from control.loadtest import (
    LoadReport,
    LoadTestError,
    generated_payloads,
    local_server,
    payloads_from_logs,
    run_loadtest,
)
from control.loadtest.ghz import GhzSettings, ghz_command, run_ghz
from control.loadtest.local_server import free_port
from control.loadtest.payloads import write_data_file
from control.loadtest.protoset import write_protoset
from control.loadtest.report import parse_ghz_report
from control.loadtest.server_process import server_process
from features.tokenize import tokenize_table
from tests.control import loadtest_specs

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

JSON_KEYS = {"qps", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "errors", "count", "ghz_version"}
SPECS_REF = "tests.control.loadtest_specs:SPECS"
SHORT = ["--duration", "1", "--requests", "20", "--concurrency", "4"]

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ghz_dir() -> Path:
    """The directory holding ghz: PATH, else where `make install` puts it."""
    found = shutil.which("ghz") or (
        str(REPO / ".tools/bin/ghz") if (REPO / ".tools/bin/ghz").exists() else None
    )
    if found is None:
        pytest.fail("ghz is not installed: run `make install` (it builds .tools/bin/ghz)")
    return Path(found).parent


@pytest.fixture
def ghz_on_path(ghz_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{ghz_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("BIDSCORE_GHZ", raising=False)


@pytest.fixture(scope="module")
def echo_target() -> Iterator[str]:
    """The bench echo server, one worker, for the tests that need any answering server."""
    port = free_port()
    command = [sys.executable, "-m", "bench.servers.echo", "--port", str(port)]
    with server_process(command, f"127.0.0.1:{port}", cwd=REPO, ready_timeout_s=30) as server:
        yield server.target


@pytest.fixture(scope="module")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BIDSCORE_HOME whose registry has tiny ctr (FFM) and cvr (LR) models in production."""
    home = tmp_path_factory.mktemp("loadtest-home")
    registry = open_registry(f"sqlite:///{home / 'registry.db'}")
    store = open_store(f"file://{home / 'artifacts'}")
    table = datagen.generate(1500, seed=5)
    for name, spec in loadtest_specs.SPECS.items():
        data = tokenize_table(table, spec, label="click")
        if spec.algorithm == "ffm":
            model = rust_core.train_ffm(
                data, k=2, epochs=2, bits=spec.bits, fingerprint=spec.fingerprint
            )
        else:
            model = rust_core.train_lr(data, epochs=2, bits=spec.bits, fingerprint=spec.fingerprint)
        path = home / f"{name}.model"
        model.save(str(path))
        uri = store.put(path, f"{name}/1.model")
        manifest = {"model": name, "checksum": model.checksum, "fingerprint": model.fingerprint}
        version = registry.register_version(name, Manifest.from_json(manifest), uri).version
        registry.set_alias(
            name, "production", version, expected_generation=0, actor="tests", reason="load test"
        )
    return home


@pytest.fixture
def server_env(models_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this process and the servers it starts at `models_home` and the tiny specs."""
    monkeypatch.setenv("BIDSCORE_HOME", str(models_home))
    monkeypatch.delenv("BIDSCORE_REGISTRY", raising=False)
    monkeypatch.delenv("BIDSCORE_STORE", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return models_home


@pytest.fixture
def scoring_target(server_env: Path) -> Iterator[str]:
    with local_server(("ctr", "cvr"), specs=SPECS_REF, ready_timeout_s=60) as server:
        yield server.target


def invoke_json(*args: str) -> tuple[int, dict[str, object], str]:
    result = runner.invoke(app, ["loadtest", *args, "--json"])
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, document, result.stderr


def assert_sane(document: dict[str, object]) -> None:
    assert set(document) == JSON_KEYS
    assert document["errors"] == {}
    assert isinstance(document["count"], int)
    assert document["count"] > 0
    assert isinstance(document["qps"], float)
    assert document["qps"] > 0
    p50, p95, p99 = (float(document[k]) for k in ("p50_ms", "p95_ms", "p99_ms"))  # type: ignore[arg-type]
    assert 0 < p50 <= p95 <= p99
    assert str(document["ghz_version"]).startswith("v")


# --- against the real scoring server ---------------------------------------------------------


@pytest.mark.usefixtures("ghz_on_path")
def test_real_server_gives_zero_errors_and_ordered_percentiles(scoring_target: str) -> None:
    code, document, stderr = invoke_json("--target", scoring_target, *SHORT)
    assert code == 0, stderr
    assert_sane(document)


@pytest.mark.usefixtures("ghz_on_path")
def test_server_errors_fail_with_status_and_message(scoring_target: str) -> None:
    code, document, stderr = invoke_json("--target", scoring_target, *SHORT, "--models", "ctr,nope")
    assert code == 1
    assert document["errors"]
    assert set(document["errors"]) == {"NotFound"}
    assert "calls failed (NotFound" in stderr
    assert "nope" in stderr


@pytest.mark.usefixtures("ghz_on_path", "server_env")
def test_starts_its_own_server_when_no_target_is_given() -> None:
    code, document, stderr = invoke_json(*SHORT, "--specs", SPECS_REF)
    assert code == 0, stderr
    assert_sane(document)


@pytest.mark.usefixtures("ghz_on_path", "server_env")
def test_own_server_that_cannot_serve_the_models_fails_clearly() -> None:
    code, _, stderr = invoke_json(*SHORT, "--specs", SPECS_REF, "--models", "ctr,nope")
    assert code == 1
    assert stderr.startswith("error: server exited with code")
    assert "nope" in stderr


# --- against the echo server ----------------------------------------------------------------


@pytest.mark.usefixtures("ghz_on_path")
def test_table_names_every_figure(echo_target: str) -> None:
    result = runner.invoke(app, ["loadtest", "--target", echo_target, *SHORT])
    assert result.exit_code == 0, result.stderr
    for heading in ("QPS", "mean ms", "p50 ms", "p95 ms", "p99 ms", "calls", "errors"):
        assert heading in result.stdout


@pytest.mark.usefixtures("ghz_on_path")
def test_p99_over_budget_exits_5(echo_target: str) -> None:
    code, document, stderr = invoke_json("--target", echo_target, *SHORT, "--max-p99-ms", "0.001")
    assert code == 5
    assert document["errors"] == {}
    assert "exceeds --max-p99-ms 0.001" in stderr


@pytest.mark.usefixtures("ghz_on_path")
def test_skip_first_leaves_warm_up_calls_out(echo_target: str) -> None:
    payloads = generated_payloads(5, seed=1, candidates=2, models=["ctr"])
    report = run_loadtest(echo_target, payloads, duration_s=0.5, concurrency=2, skip_first=50)
    assert isinstance(report, LoadReport)
    assert report.count > 0
    assert report.error_count == 0
    assert report.p50_ms is not None
    assert report.p99_ms is not None


def test_cpus_runs_ghz_on_that_many_cores(echo_target: str, ghz_dir: Path, tmp_path: Path) -> None:
    payloads = generated_payloads(5, seed=1, candidates=2, models=["ctr"])
    data = write_data_file([dict(p) for p in payloads], tmp_path / "payloads.json")
    protoset = write_protoset(tmp_path / "scorer.protoset")
    for cpus in (1, 3):
        settings = GhzSettings(duration_s=0.3, concurrency=2, cpus=cpus)
        command = ghz_command(ghz_dir / "ghz", echo_target, data, protoset, settings)
        report = json.loads(run_ghz(command, settings))
        # ghz's own report of the options it ran with.
        assert report["options"]["CPUs"] == cpus
        assert report["count"] > 0


def test_real_entry_point_prints_json(echo_target: str, ghz_dir: Path) -> None:
    env = {**os.environ, "PATH": f"{ghz_dir}{os.pathsep}{os.environ['PATH']}"}
    control = Path(sys.executable).parent / "control"
    done = subprocess.run(
        [str(control), "loadtest", "--target", echo_target, *SHORT, "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_sane(json.loads(done.stdout))


# --- clear failures --------------------------------------------------------------------------


def test_missing_ghz_says_how_to_install(
    echo_target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without ghz
    monkeypatch.delenv("BIDSCORE_GHZ", raising=False)
    code, _, stderr = invoke_json("--target", echo_target, *SHORT)
    assert code == 1
    assert "ghz is not installed or not on PATH" in stderr
    assert "make install" in stderr


def test_explicit_ghz_that_is_not_executable(echo_target: str, tmp_path: Path) -> None:
    code, _, stderr = invoke_json("--target", echo_target, *SHORT, "--ghz", str(tmp_path / "x"))
    assert code == 1
    assert "is not an executable file" in stderr


@pytest.mark.usefixtures("ghz_on_path")
def test_target_that_does_not_answer() -> None:
    silent = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, _, stderr = invoke_json("--target", silent, *SHORT, "--ready-timeout", "2")
    assert code == 1
    assert f"target {silent} does not answer" in stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "10.0.0.1:50051"], "not a loopback address"),
        (["--target", "no-port"], "--target must be host:port"),
        (["--target", "127.0.0.1:1", "--concurrency", "0"], "--concurrency must be at least 1"),
        (["--target", "127.0.0.1:1", "--requests", "0"], "--requests must be in"),
        (["--target", "127.0.0.1:1", "--duration", "-1"], "--duration must be in"),
        (["--connections", "4", "--concurrency", "2"], "--connections (4) cannot exceed"),
        (["--target", "127.0.0.1:1", "--cpus", "-1"], "--cpus must be in 0..1024"),
        (["--target", "127.0.0.1:1", "--stream", "--cpus", "2000"], "--cpus must be in 0..1024"),
    ],
)
def test_bad_settings_fail_before_any_load(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["loadtest", *args])
    assert result.exit_code == 1
    assert message in result.stderr


# --- payloads and the report parser ---------------------------------------------------------


def test_generated_payloads_are_valid_score_requests(tmp_path: Path) -> None:
    payloads = generated_payloads(3, seed=2, candidates=4, models=["ctr", "cvr"])
    path = write_data_file(payloads, tmp_path / "data.json")
    for item in json.loads(path.read_text()):
        request = json_format.ParseDict(item, scorer_pb2.ScoreRequest())
        assert list(request.models) == ["ctr", "cvr"]
        assert len(request.candidates) == 4
        assert len(request.context) == len(datagen.CONTEXT_COLUMNS) + 1  # + user_id
        assert request.context["user_id"].startswith("user-")
        assert len(request.candidates[0].features) == len(datagen.CANDIDATE_COLUMNS)


def test_payloads_from_logs_group_rows_by_request(tmp_path: Path) -> None:
    table = datagen.generate(60, seed=3, candidates=3)
    pq.write_table(table, tmp_path / "logs.parquet")
    payloads = payloads_from_logs(tmp_path / "logs.parquet", requests=5, models=["cvr"])
    assert len(payloads) == 5
    first_id = table["request_id"][0].as_py()
    assert payloads[0]["request_id"] == first_id
    assert len(payloads[0]["candidates"]) == 3
    assert payloads[0]["context"]["ts"] == str(table["ts"][0].as_py())
    assert (
        payloads[0]["candidates"][0]["features"]["campaign_id"] == table["campaign_id"][0].as_py()
    )
    assert all(p["models"] == ["cvr"] for p in payloads)


def test_report_parser_reads_statuses_and_nanoseconds() -> None:
    text = json.dumps(
        {
            "count": 10, "rps": 123.5, "average": 2_000_000,
            "statusCodeDistribution": {"OK": 7, "Unavailable": 3},
            "errorDistribution": {"rpc error: code = Unavailable desc = down": 3},
            "latencyDistribution": [
                {"percentage": 50, "latency": 1_500_000},
                {"percentage": 95, "latency": 3_000_000},
                {"percentage": 99, "latency": 4_250_000},
            ],
        }
    )  # fmt: skip
    report = parse_ghz_report(text, "v0.120.0")
    assert report.to_json() == {
        "qps": 123.5, "mean_ms": 2.0, "p50_ms": 1.5, "p95_ms": 3.0, "p99_ms": 4.25,
        "errors": {"Unavailable": 3}, "count": 10, "ghz_version": "v0.120.0",
    }  # fmt: skip
    assert report.first_error() == "rpc error: code = Unavailable desc = down"


def test_report_parser_rejects_non_json() -> None:
    with pytest.raises(LoadTestError, match="ghz printed no JSON report"):
        parse_ghz_report("panic: boom", "v0.120.0")
