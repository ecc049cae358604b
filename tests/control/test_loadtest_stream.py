"""`control loadtest --stream`: tools/streamload against real servers on 127.0.0.1, timed per
message (the echo server's ScoreStream and the scoring server on tiny models)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from control.cli.app import app
from control.loadtest import LoadReport, LoadTestError
from control.loadtest.local_server import free_port
from control.loadtest.server_process import server_process
from control.loadtest.stream import (
    StreamSettings,
    find_streamload,
    parse_report,
    run_stream_loadtest,
    write_payloads,
)
from tests.control.test_loadtest import (  # noqa: F401 -- fixtures
    JSON_KEYS,
    REPO,
    echo_target,
    models_home,
    scoring_target,
    server_env,
)

STREAM_JSON_KEYS = JSON_KEYS | {"streams"}
SHORT = ["--stream", "--duration", "1", "--requests", "20", "--streams", "2", "--concurrency", "4"]

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()


@pytest.fixture(scope="session")
def streamload() -> Path:
    try:
        return find_streamload()
    except LoadTestError as exc:
        pytest.fail(f"{exc} (run `make install`)")


def invoke_json(*args: str) -> tuple[int, dict[str, object], str]:
    result = runner.invoke(app, ["loadtest", *args, "--json"])
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, document, result.stderr


def assert_sane(document: dict[str, object], streams: int) -> None:
    assert set(document) == STREAM_JSON_KEYS
    assert document["errors"] == {}
    assert document["streams"] == streams
    assert isinstance(document["count"], int)
    assert document["count"] > 0
    assert float(document["qps"]) > 0  # type: ignore[arg-type]
    p50, p95, p99 = (float(document[k]) for k in ("p50_ms", "p95_ms", "p99_ms"))  # type: ignore[arg-type]
    assert 0 < p50 <= p95 <= p99


@pytest.mark.usefixtures("streamload")
def test_stream_against_the_scoring_server_closed_loop(scoring_target: str) -> None:  # noqa: F811
    code, document, stderr = invoke_json("--target", scoring_target, *SHORT)
    assert code == 0, stderr
    assert_sane(document, streams=2)


@pytest.mark.usefixtures("streamload")
def test_stream_open_loop_sends_at_the_rate(scoring_target: str) -> None:  # noqa: F811
    # In open loop --concurrency only caps what may be outstanding per stream.
    args = ["--target", scoring_target, *SHORT, "--rps", "300", "--concurrency", "100"]
    code, document, stderr = invoke_json(*args)
    assert code == 0, stderr
    assert_sane(document, streams=2)
    # 1 s at 300 messages/s: about 300 messages, whatever the server could do.
    assert 200 <= int(document["count"]) <= 330  # type: ignore[call-overload]


@pytest.mark.usefixtures("streamload")
def test_in_stream_errors_are_counted_by_status(scoring_target: str) -> None:  # noqa: F811
    code, document, _ = invoke_json("--target", scoring_target, *SHORT, "--models", "ctr,nope")
    assert code == 1
    assert set(document["errors"]) == {"NotFound"}  # type: ignore[arg-type]


@pytest.mark.usefixtures("streamload")
def test_stream_table_against_the_echo_server(echo_target: str) -> None:  # noqa: F811
    result = runner.invoke(app, ["loadtest", "--target", echo_target, *SHORT])
    assert result.exit_code == 0, result.stderr
    for word in ("QPS", "p99 ms", "messages", "streams"):
        assert word in result.stdout


def test_bad_stream_settings_fail_before_any_load() -> None:
    result = runner.invoke(app, ["loadtest", "--stream", "--streams", "0", "--target", "x:1"])
    assert result.exit_code == 1
    assert "--streams" in result.stderr
    with pytest.raises(LoadTestError, match="--connections"):
        StreamSettings(streams=2, connections=3)


def test_streamload_refuses_remote_targets_and_stops_by_itself(streamload: Path) -> None:
    done = subprocess.run(
        [str(streamload), "-target=10.1.2.3:50051", "-data=/dev/null"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "loopback" in done.stderr


def test_cpus_runs_streamload_on_that_many_cores(
    echo_target: str,  # noqa: F811
    streamload: Path,
    tmp_path: Path,
) -> None:
    data = write_payloads([{"request_id": "r", "candidates": [{"id": "c1"}]}], tmp_path / "p.bin")
    base = [str(streamload), f"-target={echo_target}", f"-data={data}", "-duration=300ms"]
    for cpus in (1, 3):
        done = subprocess.run(
            [*base, "-drain=1s", f"-cpus={cpus}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["cpus"] == cpus  # GOMAXPROCS as the tool ran
        assert report["count"] > 0
    settings = StreamSettings(duration_s=0.3, streams=1, in_flight=2, drain_s=1.0, cpus=1)
    assert run_stream_loadtest(echo_target, [{"candidates": [{"id": "c"}]}], settings).count > 0


def test_report_parser_counts_duplicates_as_errors() -> None:
    text = json.dumps(
        {
            "qps": 10.0, "mean_ms": 1.0, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0,
            "errors": {"Unavailable": 2}, "count": 12, "streams": 3, "duplicates": 1,
            "unmatched": 0, "error_messages": {"server is shutting down": 2},
        }
    )  # fmt: skip
    report = parse_report(text)
    assert report.errors == {"Unavailable": 2, "DuplicateResponse": 1}
    assert report.to_json()["streams"] == 3
    assert report.first_error() == "server is shutting down"


def test_real_entry_point_prints_json(echo_target: str, streamload: Path) -> None:  # noqa: F811
    done = subprocess.run(
        [sys.executable, "-m", "control", "loadtest", "--target", echo_target, *SHORT, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == STREAM_JSON_KEYS


def _placed_run(
    target: str,
    streamload: Path,
    settings: StreamSettings,
    placement: Callable[[], bool | None],
    on_launch: Callable[[], None],
    *,
    max_launches: int,
) -> LoadReport:
    """One tiny stream load test with a placement check."""
    return run_stream_loadtest(
        target,
        [{"request_id": "r", "candidates": [{"id": "c1"}]}],
        settings,
        streamload=streamload,
        placement=placement,
        on_launch=on_launch,
        max_launches=max_launches,
    )


def test_a_run_is_restarted_until_placement_accepts_it(echo_target: str, streamload: Path) -> None:  # noqa: F811
    verdicts = iter([None, False, False, True])
    launches: list[float] = []
    report = _placed_run(
        echo_target,
        streamload,
        StreamSettings(duration_s=1.0, streams=2, in_flight=4, drain_s=1.0),
        lambda: next(verdicts),
        lambda: launches.append(time.monotonic()),
        max_launches=5,
    )
    assert len(launches) == 3  # None (ask again), False (restart), False (restart), True
    assert report.count > 0
    assert report.errors == {}


def test_the_last_launch_is_kept_whatever_its_placement(echo_target: str, streamload: Path) -> None:  # noqa: F811
    asked: list[int] = []
    launches: list[int] = []

    def never() -> bool:
        asked.append(1)
        return False

    report = _placed_run(
        echo_target,
        streamload,
        StreamSettings(duration_s=0.5, streams=1, in_flight=2, drain_s=1.0),
        never,
        lambda: launches.append(1),
        max_launches=2,
    )
    assert (len(launches), len(asked)) == (2, 1)
    assert report.count > 0


def test_placement_sees_which_worker_holds_each_connection(streamload: Path) -> None:
    # bench.placement reads /proc: the two workers of a 2-worker server hold the streams'
    # connections between them, whatever the split.
    from bench.placement import connections_per_process, is_even, listening, spread  # noqa: PLC0415
    from bench.proc_cpu import descendants  # noqa: PLC0415

    port = free_port()
    command = [sys.executable, "-m", "bench.servers.echo", "--port", str(port), "--workers", "2"]
    with server_process(command, f"127.0.0.1:{port}", cwd=REPO, ready_timeout_s=30) as server:
        workers = listening(descendants(server.pid), port)
        assert len(workers) == 2
        assert server.pid not in workers
        seen: list[dict[int, int]] = []

        def placed() -> bool | None:
            counts = connections_per_process(workers, port)
            if sum(counts.values()) < 4:
                return None
            seen.append(counts)
            return is_even(counts)

        settings = StreamSettings(duration_s=0.5, streams=4, in_flight=2, connections=4)
        report = run_stream_loadtest(
            server.target,
            [{"request_id": "r", "candidates": [{"id": "c1"}]}],
            settings,
            streamload=streamload,
            placement=placed,
            max_launches=30,
        )
    assert report.errors == {}
    assert seen
    assert sum(seen[-1].values()) == 4
    assert spread(seen[-1]) == "2+2"
    assert spread({1: 3, 2: 1}) == "3+1"
    assert not is_even({1: 4, 2: 0})
    assert is_even({1: 1})
