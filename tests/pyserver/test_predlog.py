"""The sampled prediction log: what it writes, how it rotates, and that a full, read-only or
hung destination never blocks the caller and is counted in `bidscore_predlog_dropped_total`."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import grpc
import pytest
from prometheus_client import CollectorRegistry

from bidscore.v1 import scorer_pb2
from control import datagen
from control.monitor.predictions import read_predictions
from pyserver.predlog import IO_ERROR, MAX_VALUE_CHARS, QUEUE_FULL, TOO_LARGE, PredictionLog
from pyserver.predlog.ratelimit import WarningLimiter
from tests.pyserver.serve_harness import (
    MODELS,
    Published,
    ServerFactory,
    ServerProcess,
    metric_value,
    request_bytes,
    score,
)
from tests.waiting import FakeClock

pytestmark = pytest.mark.timeout(60)


def make_pair(
    i: int, candidates: int = 2
) -> tuple[scorer_pb2.ScoreRequest, scorer_pb2.ScoreResponse]:
    request = scorer_pb2.ScoreRequest(
        request_id=f"r{i}", context={"app_id": f"app{i % 3}", "ts": str(1_795_000_000 + i)}
    )
    response = scorer_pb2.ScoreResponse(
        request_id=f"r{i}",
        models=[
            scorer_pb2.ModelVersion(name="ctr", version="3"),
            scorer_pb2.ModelVersion(name="cvr", version="1"),
        ],
    )
    for c in range(candidates):
        request.candidates.add(id=f"c{c}", features={"campaign_id": f"camp{c}"})
        response.candidates.add(id=f"c{c}", scores=[0.25 + c / 8, 0.5])
    return request, response


def read_records(directory: Path) -> list[dict]:
    records = []
    for path in sorted(directory.glob("predictions-*.jsonl")):
        records.extend(json.loads(line) for line in path.read_text().splitlines())
    return records


def new_log(destination: str | Path, **kwargs) -> PredictionLog:
    kwargs.setdefault("sample_rate", 1.0)
    return PredictionLog(str(destination), registry=CollectorRegistry(), **kwargs)


def test_every_sampled_response_is_written_as_one_record(tmp_path: Path) -> None:
    log = new_log(tmp_path / "log")
    for i in range(10):
        request, response = make_pair(i)
        # The server hands over serialized bytes; parsed messages are accepted too.
        if i % 2:
            assert log.log_response(
                request.SerializeToString(), response.SerializeToString(), ts=100.0 + i
            )
        else:
            assert log.log_response(request, response, ts=100.0 + i)
    assert log.close()

    records = read_records(tmp_path / "log")
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(10)]
    first = records[0]
    assert first["ts"] == 100.0
    assert first["models"] == [{"name": "ctr", "version": "3"}, {"name": "cvr", "version": "1"}]
    assert first["candidates"] == [
        {"id": "c0", "scores": [0.25, 0.5]},
        {"id": "c1", "scores": [0.375, 0.5]},
    ]
    assert "context" not in first  # raw features only when asked for
    assert log.written == 10
    assert log.dropped() == 0
    assert not list((tmp_path / "log").glob("*.part"))


def test_raw_features_are_logged_when_asked(tmp_path: Path) -> None:
    log = new_log(tmp_path, include_features=True)
    request, response = make_pair(7)
    log.log_response(request, response)
    assert log.close()
    (record,) = read_records(tmp_path)
    assert record["context"] == {"app_id": "app1", "ts": "1795000007"}
    assert [c["features"] for c in record["candidates"]] == [
        {"campaign_id": "camp0"},
        {"campaign_id": "camp1"},
    ]


def test_only_schema_features_are_logged_and_long_values_are_cut(tmp_path: Path) -> None:
    # Defect 5: the log stored whatever keys and values a client sent.
    log = new_log(tmp_path, include_features=True, feature_names={"app_id", "campaign_id"})
    request, response = make_pair(7)
    request.context["password"] = "hunter2"
    request.candidates[0].features["campaign_id"] = "x" * 5000
    request.candidates[1].features["free_text"] = "anything"
    request.request_id = response.request_id = "r" * 1000
    log.log_response(request, response)
    assert log.close()
    (record,) = read_records(tmp_path)
    assert record["context"] == {"app_id": "app1"}
    first, second = (c["features"] for c in record["candidates"])
    assert len(first["campaign_id"]) == MAX_VALUE_CHARS
    assert first["campaign_id"].endswith("...")
    assert second == {"campaign_id": "camp1"}
    assert len(record["request_id"]) == MAX_VALUE_CHARS


def test_a_line_over_the_cap_loses_its_features_then_the_record(tmp_path: Path) -> None:
    log = new_log(tmp_path, include_features=True, max_line_bytes=4096)
    big, big_response = make_pair(1, candidates=20)
    for candidate in big.candidates:
        candidate.features["campaign_id"] = "y" * 200  # ~5 KB of features in all
    huge, huge_response = make_pair(2, candidates=400)  # over 4 KiB without features too
    log.log_response(big, big_response)
    log.log_response(huge, huge_response)
    assert log.close()
    (record,) = read_records(tmp_path)
    assert record["features_dropped"] is True
    assert "features" not in record["candidates"][0]
    assert log.dropped(TOO_LARGE) == 1
    assert all(len(line) <= 4096 for line in _lines(tmp_path))


def _lines(directory: Path) -> list[bytes]:
    return [
        line
        for path in sorted(directory.glob("predictions-*.jsonl"))
        for line in path.read_bytes().splitlines(keepends=True)
    ]


def test_sample_rate_keeps_about_that_share(tmp_path: Path) -> None:
    log = new_log(tmp_path, sample_rate=0.1, seed=7)
    request, response = make_pair(0)
    kept = sum(log.log_response(request, response) for _ in range(4000))
    assert log.close()
    # Binomial(4000, 0.1): mean 400, sd 19; the window is over 5 sd wide on each side.
    assert 300 < kept < 500
    assert len(read_records(tmp_path)) == kept

    off = new_log(tmp_path / "off", sample_rate=0.0)
    assert not any(off.log_response(request, response) for _ in range(100))
    assert off.close()
    assert not (tmp_path / "off").exists() or not list((tmp_path / "off").iterdir())


def test_files_rotate_by_size_and_keep_every_record(tmp_path: Path) -> None:
    log = new_log(tmp_path, rotate_bytes=300)
    for i in range(40):
        log.log_response(*make_pair(i))
        if i % 5 == 4:
            time.sleep(0.05)  # let the writer take several batches
    assert log.close()
    files = sorted(tmp_path.glob("predictions-*.jsonl"))
    assert len(files) > 1
    records = read_records(tmp_path)
    assert sorted(int(r["request_id"][1:]) for r in records) == list(range(40))


def test_invalid_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sample rate"):
        new_log(tmp_path, sample_rate=1.5)
    with pytest.raises(ValueError, match="queue size"):
        new_log(tmp_path, queue_size=0)


def test_a_destination_that_cannot_be_created_drops_and_counts(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log directory should be")
    log = new_log(blocker / "log")
    for i in range(20):
        assert log.log_response(*make_pair(i))
    assert log.close()
    assert log.dropped(IO_ERROR) == 20
    assert log.written == 0


def _mount_tmpfs(path: Path, options: str) -> None:
    """Mount a tmpfs, or skip: root in a container may lack the capability to mount."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs: real ENOSPC after a few records (mounting needs root)."""
    if os.geteuid() != 0:
        pytest.skip("a size-limited filesystem needs root to mount")
    mount = tmp_path / "full"
    _mount_tmpfs(mount, "size=16k")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only mount as root (who ignores permission bits), else a mode 0555 directory."""
    target = tmp_path / "ro"
    if os.geteuid() == 0:
        _mount_tmpfs(target, "ro,size=16k")
        try:
            yield target
        finally:
            subprocess.run(["umount", "-l", str(target)], check=False)
    else:
        target.mkdir()
        target.chmod(0o555)
        try:
            yield target
        finally:
            target.chmod(0o755)


def test_full_disk_keeps_what_fits_and_counts_the_rest(full_disk: Path) -> None:
    log = new_log(full_disk, include_features=True)
    sent = 300  # about 330 bytes each: far more than 16 KiB
    for i in range(sent):
        assert log.log_response(*make_pair(i))
        if i % 20 == 0:
            time.sleep(0.01)
    assert log.close()
    kept = read_records(full_disk)  # every line that stayed on disk is complete JSON
    assert 0 < len(kept) < sent
    assert log.dropped(IO_ERROR) == sent - len(kept)
    assert log.written >= len(kept)


def test_full_disk_warns_once_per_interval_with_a_count(
    full_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Defect 6: every failed batch logged a WARNING line (722 lines in 8 s on a full disk).
    log = new_log(full_disk, include_features=True)
    with caplog.at_level("WARNING", logger="pyserver.predlog"):
        for i in range(300):
            assert log.log_response(*make_pair(i))
            if i % 10 == 0:
                time.sleep(0.01)  # pacing only: lets the writer fail many separate batches
        assert log.close()
    lines = [r for r in caplog.records if r.name.startswith("pyserver.predlog")]
    # The first failure at once, the rest summed up when the log closes.
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]
    assert "record(s) dropped" in lines[-1].getMessage()
    assert log.dropped(IO_ERROR) > 0


def test_warning_limiter_logs_once_per_interval_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    limiter = WarningLimiter(logging.getLogger("pyserver.predlog"), 60.0, clock=clock)
    with caplog.at_level("WARNING", logger="pyserver.predlog"):
        for _ in range(700):  # a full disk failing every batch for a while
            limiter.warn("cannot write", 10, OSError(28, "No space left on device"))
            clock.advance(0.01)
        clock.advance(60)
        limiter.warn("cannot write", 10, OSError(28, "No space left on device"))
        limiter.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("prediction log: 1 failure(s), 10 record(s) dropped")
    assert lines[1].startswith("prediction log: 700 failure(s), 7000 record(s) dropped in the")
    assert "No space left on device" in lines[1]


def test_read_only_directory_drops_and_counts(read_only_dir: Path) -> None:
    log = new_log(read_only_dir)
    for i in range(25):
        assert log.log_response(*make_pair(i))
    assert log.close()
    assert log.dropped(IO_ERROR) == 25
    assert read_records(read_only_dir) == []


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung S3 endpoint."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_hung_destination_never_blocks_the_caller(
    hung_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # rotate_bytes=1: every batch is uploaded at once, so the writer is stuck on the upload.
    log = new_log(
        f"s3://bucket/preds?endpoint_url={hung_endpoint}&region=us-east-1",
        queue_size=4,
        rotate_bytes=1,
    )
    request, response = make_pair(1)
    slowest = 0.0
    for _ in range(500):
        start = time.perf_counter()
        log.log_response(request, response)
        slowest = max(slowest, time.perf_counter() - start)
        time.sleep(0.0005)
    # The upload hangs for seconds; a call that waited for it would take that long.
    assert slowest < 0.5
    assert log.dropped(QUEUE_FULL) >= 500 - 4 - 4 - 1  # queue + the batch in the writer's hands
    assert not log.close(timeout=0.5)  # the stuck writer is abandoned, not waited for


@pytest.mark.aws
def test_s3_prefix_receives_finished_files(moto_server: str) -> None:
    bucket = f"predlog-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    log = new_log(f"s3://{bucket}/preds/day1?endpoint_url={moto_server}&region=us-east-1")
    for i in range(12):
        log.log_response(*make_pair(i))
    assert log.close()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys
    assert all(k.startswith("preds/day1/predictions-") and k.endswith(".jsonl") for k in keys)
    lines = b"".join(s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys).splitlines()
    assert sorted(json.loads(line)["request_id"] for line in lines) == sorted(
        f"r{i}" for i in range(12)
    )
    assert log.dropped() == 0


# --- through the real server -------------------------------------------------------------------


def _score_requests(server: ServerProcess, n: int, candidates: int = 3) -> None:
    with grpc.insecure_channel(server.target) as channel:
        for payload in datagen.request_payloads(n, seed=5, candidates=candidates):
            reply = score(channel, request_bytes(payload))
            assert len(reply.candidates) == candidates  # scoring carries on, log or not


def _wait_for_metric(server: ServerProcess, name: str, value: float, **labels: str) -> None:
    deadline = time.monotonic() + 20
    while metric_value(server.metrics(), name, **labels) < value:
        assert time.monotonic() < deadline, server.metrics()
        time.sleep(0.1)


@pytest.mark.timeout(180)
def test_server_logs_sampled_predictions_with_features(
    published: Published, start_server: ServerFactory, tmp_path: Path
) -> None:
    log_dir = tmp_path / "predlog"
    server = start_server(
        published.registry_url,
        published.store_url,
        "--predlog",
        str(log_dir),
        "--predlog-sample-rate",
        "1",
        "--predlog-features",
    )
    _score_requests(server, 20)
    _wait_for_metric(server, "bidscore_predlog_records_total", 20)
    assert server.stop() == 0  # SIGTERM: the worker closes the log and finishes its file

    log = read_predictions([str(log_dir)])
    assert log.scores.num_rows == 20 * 3 * len(MODELS)
    served = {(m, published.versions[m][0]) for m in MODELS}
    assert (
        set(zip(log.scores["model"].to_pylist(), log.scores["version"].to_pylist(), strict=True))
        == served
    )
    assert log.features is not None
    assert log.features.num_rows == 20 * 3
    assert not list(log_dir.glob("*.part"))


@pytest.mark.timeout(180)
def test_server_keeps_scoring_on_a_read_only_log_disk(
    published: Published, start_server: ServerFactory, read_only_dir: Path
) -> None:
    server = start_server(
        published.registry_url,
        published.store_url,
        "--predlog",
        str(read_only_dir),
        "--predlog-sample-rate",
        "1",
    )
    _score_requests(server, 30)
    _wait_for_metric(server, "bidscore_predlog_dropped_total", 30, reason="io_error")
    text = server.metrics()
    assert metric_value(text, "bidscore_predlog_records_total") == 0
    assert metric_value(text, "grpc_server_handled_total", grpc_code="OK") == 30
    assert server.stop() == 0


@pytest.mark.timeout(180)
def test_server_log_has_explicit_modes_and_only_schema_features(
    published: Published, start_server: ServerFactory, tmp_path: Path
) -> None:
    # Defect 5: modes came from the umask and any client key was stored. A umask of 0 would
    # give 0666 files and 0777 directories to a server that leaves modes to the umask.
    log_dir = tmp_path / "logs" / "predlog"
    old = os.umask(0)
    try:
        server = start_server(
            published.registry_url,
            published.store_url,
            "--predlog",
            str(log_dir),
            "--predlog-sample-rate",
            "1",
            "--predlog-features",
        )
    finally:
        os.umask(old)
    payload = datagen.request_payloads(1, seed=5, candidates=2)[0]
    payload["context"]["api_key"] = "secret"
    payload["candidates"][0]["features"]["campaign_id"] = "z" * 10_000
    with grpc.insecure_channel(server.target) as channel:
        score(channel, request_bytes(payload))
    _wait_for_metric(server, "bidscore_predlog_records_total", 1)
    assert server.stop() == 0
    (path,) = log_dir.glob("predictions-*.jsonl")
    assert path.stat().st_mode & 0o777 == 0o640
    assert log_dir.stat().st_mode & 0o777 == 0o750
    (record,) = read_records(log_dir)
    assert "api_key" not in record["context"]
    assert len(record["candidates"][0]["features"]["campaign_id"]) == MAX_VALUE_CHARS


@pytest.mark.timeout(180)
def test_parts_left_by_a_killed_worker_are_recovered_at_start(
    published: Published, start_server: ServerFactory, tmp_path: Path
) -> None:
    # Defect 7: after kill -9 the open `.part` file stayed invisible to the monitor for good.
    log_dir = tmp_path / "predlog"
    args = ("--predlog", str(log_dir), "--predlog-sample-rate", "1")
    server = start_server(published.registry_url, published.store_url, *args)
    _score_requests(server, 5)
    _wait_for_metric(server, "bidscore_predlog_records_total", 5)
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    (part,) = log_dir.glob("*.jsonl.part")
    with part.open("ab") as handle:
        handle.write(b'{"ts": 17950')  # the line the writer was in the middle of
    server = start_server(published.registry_url, published.store_url, *args)
    _wait_for_metric(server, "bidscore_predlog_recovered_records_total", 5)
    assert (
        metric_value(server.metrics(), "bidscore_predlog_dropped_total", reason="partial_line") == 1
    )
    assert not part.exists()
    assert len(read_records(log_dir)) == 5  # every line parses: the partial one is gone
    assert server.stop() == 0
