"""Hot reload against a real server: alias moves under load, refused artifacts, registry
outages (SQLite and DynamoDB)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import grpc
import pytest
from grpc_health.v1 import health_pb2

from bidscore.store.file import path_from_uri
from control import datagen
from tests.pyserver.serve_harness import (
    Published,
    ServerFactory,
    ServerProcess,
    TrainedModel,
    free_port,
    metric_value,
    publish_trained,
    request_bytes,
    score,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(240)
REQUEST = request_bytes(datagen.request_payloads(1, seed=2, candidates=6)[0], ["ctr", "cvr"])
# How long after an alias move the old version may still answer: poll interval (0.2 s), the
# load and warm-up of a small model, and scheduling slack on a busy 2-core machine.
LAG = 5.0


def _served(server: ServerProcess) -> dict[str, str]:
    with grpc.insecure_channel(server.target) as channel:
        return {m.name: m.version for m in score(channel, REQUEST).models}


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    wait_until(condition, timeout=timeout)


def _failures(server: ServerProcess, reason: str, model: str | None = None) -> float:
    labels = {"reason": reason} | ({"model": model} if model else {})
    return metric_value(server.metrics(), "bidscore_reload_failures_total", **labels)


def test_alias_moved_20_times_under_load_loses_no_call(
    published: Published, start_server: ServerFactory, trained: dict[str, list[TrainedModel]]
) -> None:
    new_versions = [
        published.publish(
            "ctr",
            trained["ctr"][i % 2].path,
            checksum=trained["ctr"][i % 2].model.checksum,
            fingerprint=trained["ctr"][i % 2].model.fingerprint,
        )
        for i in range(20)
    ]
    server = start_server(published.registry_url, published.store_url)
    moving_at: dict[str, float] = {"1": 0.0}
    moved_at: dict[str, float] = {"1": 0.0}
    order = ["1", *new_versions]
    results: list[tuple[int, float, float, str]] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        with grpc.insecure_channel(server.target) as channel:
            while not stop.is_set():
                start = time.monotonic()
                try:
                    reply = score(channel, REQUEST)
                except grpc.RpcError as exc:
                    with lock:
                        errors.append(f"{exc.code()}: {exc.details()}")
                    continue
                versions = {m.name: m.version for m in reply.models}
                with lock:
                    results.append((worker, start, time.monotonic(), versions["ctr"]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for version in new_versions:
            time.sleep(0.4)
            # The move happens somewhere between these two instants.
            moving_at[version] = time.monotonic()
            published.promote("ctr", version)
            moved_at[version] = time.monotonic()
        _wait_for(lambda: _served(server)["ctr"] == new_versions[-1])
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert errors == []
    assert len(results) > 100
    rank = {version: i for i, version in enumerate(order)}
    for worker, start, end, version in results:
        # Never a version before it was promoted...
        assert moving_at[version] <= end, (version, moving_at[version], end)
        # ...nor one replaced more than LAG seconds before the call started.
        following = order[rank[version] + 1] if rank[version] + 1 < len(order) else None
        if following is not None:
            assert start <= moved_at[following] + LAG, (worker, version, start)
    for worker in range(4):
        seen = [rank[v] for w, _, _, v in sorted(results, key=lambda r: r[1]) if w == worker]
        assert seen == sorted(seen), "a client saw an older version after a newer one"
    assert len({v for *_, v in results}) >= 10
    text = server.metrics()
    assert metric_value(text, "bidscore_reload_successes_total", model="ctr") >= 10
    last = metric_value(text, "bidscore_model_last_reload_timestamp_seconds", model="ctr")
    assert time.time() - last < 30


def test_bad_artifacts_are_refused_and_the_old_version_keeps_serving(
    published: Published,
    start_server: ServerFactory,
    trained: dict[str, list[TrainedModel]],
    tmp_path: Path,
) -> None:
    server = start_server(published.registry_url, published.store_url)
    good = trained["ctr"][1]
    corrupt = tmp_path / "corrupt.model"
    data = bytearray(good.path.read_bytes())
    data[-64] ^= 0xFF  # one flipped byte in the weights
    corrupt.write_bytes(bytes(data))
    cases = [
        # (artifact, manifest checksum, reason the server must give)
        (corrupt, good.model.checksum, "format"),
        (good.path, "00000000deadbeef", "checksum"),
        (trained["win"][0].path, trained["win"][0].model.checksum, "fingerprint"),
    ]
    for path, checksum, reason in cases:
        version = published.publish("ctr", path, checksum=checksum, fingerprint="ignored")
        published.promote("ctr", version)
        _wait_for(lambda reason=reason: _failures(server, reason, "ctr") >= 1)
        assert _served(server)["ctr"] == "1"
        assert server.health() == health_pb2.HealthCheckResponse.SERVING
        assert f"refused ctr version {version} ({reason})" in server.log()
    # The refused version is not retried on every poll: counted once.
    server.wait_for_polls()
    assert _failures(server, "format", "ctr") == 1
    # A good version after the bad ones is picked up.
    published.promote("ctr", "2")
    _wait_for(lambda: _served(server)["ctr"] == "2")


def _corrupt_copy(good: TrainedModel, tmp_path: Path) -> Path:
    corrupt = tmp_path / "corrupt.model"
    data = bytearray(good.path.read_bytes())
    data[-64] ^= 0xFF  # one flipped byte in the weights
    corrupt.write_bytes(bytes(data))
    return corrupt


def _repair_in_store(published: Published, version: str, good: TrainedModel) -> None:
    """Put the good bytes behind the refused version's URI (what an operator would do)."""
    uri = published.registry.get_version("ctr", version).artifact_uri
    target = path_from_uri(uri)
    tmp = target.with_name(target.name + ".repair")
    shutil.copyfile(good.path, tmp)
    tmp.replace(target)


def test_a_refused_artifact_repaired_in_the_store_is_loaded_after_backoff(
    published: Published,
    start_server: ServerFactory,
    trained: dict[str, list[TrainedModel]],
    tmp_path: Path,
) -> None:
    # Defect 2: a refused (model, version) was remembered forever.
    server = start_server(published.registry_url, published.store_url, "--refused-retry", "0.5")
    good = trained["ctr"][1]
    corrupt = _corrupt_copy(good, tmp_path)
    version = published.publish("ctr", corrupt, checksum=good.model.checksum, fingerprint="x")
    published.promote("ctr", version)
    _wait_for(lambda: _failures(server, "format", "ctr") >= 1)
    text = server.metrics()
    assert (
        metric_value(
            text, "bidscore_refused_artifact", model="ctr", version=version, reason="format"
        )
        == 1
    )
    assert _served(server)["ctr"] == "1"
    details = _health_details(server)
    assert details["refused"] == [{"model": "ctr", "reason": "format", "version": version}]
    assert details["served"]["ctr"] == "1"
    _repair_in_store(published, version, good)
    _wait_for(lambda: _served(server)["ctr"] == version)
    assert 'bidscore_refused_artifact{model="ctr"' not in server.metrics()
    _wait_for(lambda: _health_details(server)["refused"] == [])


def _health_details(server: ServerProcess) -> dict:
    url = f"http://127.0.0.1:{server.metrics_port}/health"
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


def test_an_alias_move_retries_a_refused_version_at_once(
    published: Published,
    start_server: ServerFactory,
    trained: dict[str, list[TrainedModel]],
    tmp_path: Path,
) -> None:
    # Defect 2: after a rollback, `promote ctr N --force` of the repaired version was ignored.
    # The retry delay is the default 30 s: only the alias move can explain a quick reload.
    server = start_server(published.registry_url, published.store_url)
    good = trained["ctr"][1]
    corrupt = _corrupt_copy(good, tmp_path)
    version = published.publish("ctr", corrupt, checksum=good.model.checksum, fingerprint="x")
    published.promote("ctr", version)
    _wait_for(lambda: _failures(server, "format", "ctr") >= 1)
    _repair_in_store(published, version, good)
    published.promote("ctr", "1")  # rollback
    server.wait_for_polls()
    published.promote("ctr", version)  # promote again
    _wait_for(lambda: _served(server)["ctr"] == version, timeout=15)
    assert _failures(server, "format", "ctr") == 1


def _scores(server: ServerProcess) -> list[float]:
    with grpc.insecure_channel(server.target) as channel:
        return [s for c in score(channel, REQUEST).candidates for s in c.scores]


def test_cached_model_files_are_read_only_and_checked_on_every_poll(
    published: Published, start_server: ServerFactory, tmp_path: Path
) -> None:
    # Defect 10: a cached model edited in place changed live scores; truncated, it killed the
    # worker with SIGBUS. (The tests run as root, who may write a 0444 file anyway.)
    server = start_server(published.registry_url, published.store_url)
    baseline = _scores(server)
    cache = tmp_path / "cache"
    (cached,) = (cache / "ctr").glob("1-*.model")
    assert cached.stat().st_mode & 0o777 == 0o444
    assert (cache / "ctr").stat().st_mode & 0o777 == 0o750
    assert cache.stat().st_mode & 0o777 == 0o750

    size = cached.stat().st_size
    with cached.open("r+b") as handle:  # zero the weights in place, same size
        handle.seek(128)
        handle.write(bytes(size - 128))
    _wait_for(lambda: _failures(server, "cache_changed", "ctr") >= 1)
    _wait_for(lambda: _scores(server) == baseline)  # the fresh copy is swapped in
    assert "changed on disk (modified in place)" in server.log()

    (cached,) = (cache / "ctr").glob("1-*.model")  # the fresh copy
    with cached.open("r+b") as handle:
        handle.truncate(4096)
    _wait_for(lambda: _failures(server, "cache_changed", "ctr") >= 2)
    server.wait_for_polls()  # the poll that noticed it has swapped a fresh copy in
    assert _scores(server) == baseline
    assert server.proc.poll() is None
    assert f"size {size} -> 4096 bytes" in server.log()


def test_an_alias_to_a_missing_version_is_reported_as_such_not_as_an_outage(
    published: Published, start_server: ServerFactory
) -> None:
    # Defect 13: a dangling alias was logged as a registry outage, with exponential backoff.
    server = start_server(published.registry_url, published.store_url)
    db = published.registry_url.removeprefix("sqlite://")
    with sqlite3.connect(db) as conn:  # what a bad manual fix or a partial restore leaves
        conn.execute(
            "UPDATE aliases SET version = '42', generation = generation + 1 "
            "WHERE model = 'ctr' AND alias = 'production'"
        )
    _wait_for(lambda: _failures(server, "missing_version", "ctr") >= 1)
    assert _failures(server, "outage") == 0
    assert "alias 'production' of ctr points at version 42, which is not registered" in (
        server.log()
    )
    # Polling goes on at the normal interval (0.2 s), not a backoff doubling towards 30 s.
    started = time.monotonic()
    server.wait_for_polls(10)
    assert time.monotonic() - started < 8
    assert _failures(server, "outage") == 0
    assert _served(server)["ctr"] == "1"
    published.promote("ctr", "2")
    _wait_for(lambda: _served(server)["ctr"] == "2")


def test_sqlite_registry_unreadable_keeps_serving(
    published: Published, start_server: ServerFactory
) -> None:
    server = start_server(published.registry_url, published.store_url)
    db = Path(published.registry_url.removeprefix("sqlite://"))
    away = db.with_name("registry.away")
    db.rename(away)
    db.mkdir()  # a directory where the database file was: every open fails
    try:
        _wait_for(lambda: _failures(server, "outage", "*") >= 2)
        with grpc.insecure_channel(server.target) as channel:
            for _ in range(50):
                assert score(channel, REQUEST).models[0].version == "1"
        assert server.health() == health_pb2.HealthCheckResponse.SERVING
    finally:
        db.rmdir()
        away.rename(db)
    published.promote("ctr", "2")
    _wait_for(lambda: _served(server)["ctr"] == "2", timeout=60)


@pytest.fixture
def private_moto() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A moto server of this test's own, so stopping it cannot hurt other tests."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    executable = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(executable), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail("moto_server did not start")
                time.sleep(0.1)
        yield url, proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.aws
def test_dynamodb_registry_unreachable_keeps_serving(
    private_moto: tuple[str, subprocess.Popen[bytes]],
    start_server: ServerFactory,
    trained: dict[str, list[TrainedModel]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, moto = private_moto
    aws_env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in aws_env.items():
        monkeypatch.setenv(key, value)
    suffix = uuid.uuid4().hex[:10]
    bucket = f"bidscore-serve-{suffix}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=bucket)
    pub = publish_trained(
        f"dynamodb://serve-{suffix}?region=us-east-1&endpoint_url={url}&create=1",
        f"s3://{bucket}/artifacts?endpoint_url={url}&region=us-east-1",
        trained,
    )
    server = start_server(pub.registry_url, pub.store_url, env=aws_env)
    assert _served(server) == {"ctr": "1", "cvr": "1"}
    moto.kill()
    moto.wait()
    _wait_for(lambda: _failures(server, "outage", "*") >= 1, timeout=60)
    with grpc.insecure_channel(server.target) as channel:
        for _ in range(50):
            reply = score(channel, REQUEST)
            assert {m.name: m.version for m in reply.models} == {"ctr": "1", "cvr": "1"}
    assert server.health() == health_pb2.HealthCheckResponse.SERVING
    assert server.stop() == 0


@pytest.mark.timeout(120)
def test_per_model_aliases_are_followed_each(
    published: Published, start_server: ServerFactory
) -> None:
    published.registry.set_alias("ctr", "canary", "2", expected_generation=0, actor="t", reason="t")
    server = start_server(
        published.registry_url, published.store_url, "--alias", "ctr=canary", models="ctr,cvr"
    )
    # ctr follows canary (version 2), cvr the default production (version 1).
    assert _served(server) == {"ctr": "2", "cvr": "1"}
    text = server.metrics()
    assert metric_value(text, "bidscore_model_info", model="ctr", alias="canary", version="2") == 1
    assert metric_value(text, "bidscore_model_info", model="cvr", alias="production") == 1
    # Each model moves with its own alias only.
    published.promote("cvr", "2")
    _wait_for(lambda: _served(server) == {"ctr": "2", "cvr": "2"})
    canary = published.registry.get_alias("ctr", "canary")
    assert canary is not None
    published.registry.set_alias(
        "ctr", "canary", "1", expected_generation=canary.generation, actor="t", reason="t"
    )
    _wait_for(lambda: _served(server) == {"ctr": "1", "cvr": "2"})
