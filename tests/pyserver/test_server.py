"""A worker's lifecycle as a real process: readiness (with models that have no alias yet), load
shedding, port conflicts and the graceful drain on SIGTERM."""

from __future__ import annotations

import http.client
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from control import datagen
from pyserver.grpc_core import SERVER_EXPERIMENTS
from tests.pyserver.serve_harness import (
    Published,
    ServerFactory,
    ServerProcess,
    raw_score,
    request_bytes,
    score,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)
SERVING = health_pb2.HealthCheckResponse.SERVING


def _payload(candidates: int = 5, seed: int = 1) -> dict[str, Any]:
    return datagen.request_payloads(1, seed=seed, candidates=candidates)[0]


def _request(candidates: int = 5, seed: int = 1) -> bytes:
    return request_bytes(_payload(candidates, seed))


def test_control_serve_refuses_when_no_model_has_the_alias(
    published: Published, start_server: ServerFactory
) -> None:
    # Nothing has a "canary" alias: nothing to serve, so no server starts.
    server = start_server(
        published.registry_url, published.store_url, "--alias", "canary", wait=False
    )
    assert server.proc.wait(timeout=60) == 1
    [line] = server.log().strip().splitlines()
    assert line.startswith("error: no model has a 'canary' alias, nothing to serve: ")
    # The exact commands that fix it, per model (each has two registered versions).
    backends = f"--registry {published.registry_url} --store {published.store_url}"
    for name in ("ctr", "cvr", "win"):
        fix = f"control promote {name} 2 --alias canary --create-alias {backends}"
        assert f"{name}: run `{fix}`" in line


def test_serves_the_models_that_have_the_alias_and_names_the_others(
    published: Published, start_server: ServerFactory
) -> None:
    published.registry.set_alias("ctr", "canary", "1", expected_generation=0, actor="t", reason="t")
    server = start_server(published.registry_url, published.store_url, "--alias", "canary")
    # SERVING with ctr alone; cvr and win are reported once each, with the fix.
    log = server.log()
    for name in ("cvr", "win"):
        warning = (
            f"warning: {name} has no 'canary' alias: run `control promote {name} 2 --alias"
            f" canary --create-alias --registry {published.registry_url} --store"
            f" {published.store_url}`; serving ctr meanwhile"
        )
        assert log.count(warning) == 1, log
    # The gRPC core settings the workers run with (pyserver.grpc_core) are in the log.
    assert log.count(f"gRPC core: GRPC_EXPERIMENTS={SERVER_EXPERIMENTS}\n") == 1, log
    with grpc.insecure_channel(server.target) as channel:
        reply = score(channel, request_bytes(_payload(), models=["ctr"]))
        assert [(m.name, m.version) for m in reply.models] == [("ctr", "1")]
        with pytest.raises(grpc.RpcError) as info:
            raw_score(channel)(request_bytes(_payload(), models=["cvr"]), timeout=5)
        assert "cvr" in (info.value.details() or "")
    # The others join as soon as their alias is set, without a restart.
    for name in ("cvr", "win"):
        published.registry.set_alias(
            name, "canary", "2", expected_generation=0, actor="t", reason="t"
        )

    def served() -> set[tuple[str, str]]:
        with grpc.insecure_channel(server.target) as channel:
            return {(m.name, m.version) for m in score(channel, _request()).models}

    wait_until(
        lambda: served() == {("ctr", "1"), ("cvr", "2"), ("win", "2")},
        timeout=30,
        message="cvr and win to join the served set",
    )
    assert server.stop() == 0


def test_sigterm_during_load_finishes_in_flight_calls_and_exits_0(
    published: Published, start_server: ServerFactory
) -> None:
    server = start_server(published.registry_url, published.store_url)
    heavy = _request(candidates=400, seed=3)
    outcomes: list[tuple[float, float, grpc.StatusCode]] = []
    lock = threading.Lock()

    def client() -> None:
        # Like a real client: keep calling until this replica refuses, then go elsewhere.
        with grpc.insecure_channel(server.target) as channel:
            call = raw_score(channel)
            code = grpc.StatusCode.OK
            while code == grpc.StatusCode.OK:
                start = time.monotonic()
                try:
                    call(heavy, timeout=20)
                except grpc.RpcError as exc:
                    code = exc.code()
                with lock:
                    outcomes.append((start, time.monotonic(), code))

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(outcomes) >= 20, message="calls under way")  # a loaded server
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    exit_code = server.proc.wait(timeout=30)
    for thread in threads:
        thread.join(timeout=30)

    assert exit_code == 0, server.log()[-2000:]
    assert all(code == grpc.StatusCode.OK for _, end, code in outcomes if end < signalled)
    # Calls running when the signal arrived completed normally rather than being cut off...
    assert any(s < signalled < e and code == grpc.StatusCode.OK for s, e, code in outcomes)
    # ...every client was eventually refused, and a refusal is always a clean UNAVAILABLE.
    refused = [code for *_, code in outcomes if code != grpc.StatusCode.OK]
    assert len(refused) == 6
    assert set(refused) == {grpc.StatusCode.UNAVAILABLE}, outcomes[-12:]
    assert "in-flight calls finished" in server.log()
    with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError) as info:
        raw_score(channel)(heavy, timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_max_concurrent_rpcs_sheds_load_with_resource_exhausted(
    published: Published, start_server: ServerFactory
) -> None:
    server = start_server(published.registry_url, published.store_url, "--max-concurrent-rpcs", "1")
    heavy = _request(candidates=800, seed=4)
    with grpc.insecure_channel(server.target) as channel:
        call = raw_score(channel)
        futures = [call.future(heavy, timeout=30) for _ in range(40)]
        codes = []
        for future in futures:
            try:
                future.result()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
        assert grpc.StatusCode.OK in codes
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        # Once the burst is over, calls succeed again.
        assert len(score(channel, _request()).candidates) == 5


def test_port_in_use_fails_with_one_line(published: Published, start_server: ServerFactory) -> None:
    first = start_server(published.registry_url, published.store_url)
    second = start_server(published.registry_url, published.store_url, port=first.port, wait=False)
    assert second.proc.wait(timeout=60) == 1
    # Checked before gRPC starts: one line, no C-core log line before it.
    assert second.log().strip().splitlines() == [
        f"error: --port: port {first.port} on 127.0.0.1 is already in use (another server?"
        " stop it or choose another --port)"
    ]
    assert first.health() == SERVING


def test_many_calls_in_parallel_all_succeed(
    published: Published, start_server: ServerFactory
) -> None:
    server = start_server(published.registry_url, published.store_url)
    requests = [_request(candidates=10, seed=s) for s in range(20)]
    with grpc.insecure_channel(server.target) as channel, ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda r: score(channel, r), requests * 5))
    assert len(replies) == 100
    assert all(len(r.candidates) == 10 for r in replies)


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line in /proc status")


def _scrape(server: ServerProcess) -> bool:
    try:
        return "bidscore_ready" in server.metrics()
    except (OSError, http.client.HTTPException):
        return False


def test_slow_metrics_connections_do_not_grow_threads(
    published: Published, start_server: ServerFactory
) -> None:
    # Defect 8: one thread per metrics connection (300 slow connections -> 314 threads).
    server = start_server(published.registry_url, published.store_url)
    before = _threads(server.proc.pid)
    held = []
    try:
        for _ in range(300):
            conn = socket.create_connection(("127.0.0.1", server.metrics_port), timeout=5)
            conn.sendall(b"GET /metrics HTTP/1.1\r\n")  # ...and never finish the request
            held.append(conn)
        # A scrape after them is accepted after every one of them (the accept queue is FIFO);
        # it may wait for the idle timeout to free a slot.
        wait_until(lambda: _scrape(server), timeout=30, message="a metrics scrape")
        assert _threads(server.proc.pid) <= before + 4
        assert server.proc.poll() is None
    finally:
        for conn in held:
            conn.close()
    with grpc.insecure_channel(server.target) as channel:
        assert len(score(channel, _request()).candidates) == 5
