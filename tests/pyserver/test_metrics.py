"""Every Score call is counted once, under the code its client saw, in grpc-prometheus terms."""

from __future__ import annotations

import collections
import json
import re
import threading
from pathlib import Path

import grpc
import pytest
import yaml

from bidscore.experiments import Experiment
from control import datagen
from tests.pyserver.serve_harness import (
    Published,
    ServerFactory,
    metric_value,
    raw_score,
    request_bytes,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]

CODES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
}


def _request(candidates: int, models: list[str] | None = None) -> bytes:
    payload = datagen.request_payloads(1, seed=2, candidates=candidates)[0]
    return request_bytes(payload, models)


def _call(call: grpc.UnaryUnaryMultiCallable, request: bytes, timeout: float) -> grpc.StatusCode:
    try:
        call(request, timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _deltas(before: str, after: str) -> dict[str, float]:
    def counted(code: str) -> float:
        args = {"grpc_method": "Score", "grpc_code": code}
        name = "grpc_server_handled_total"
        return metric_value(after, name, **args) - metric_value(before, name, **args)

    out = {name: counted(name) for name in CODES.values()}
    out["started"] = metric_value(after, "grpc_server_started_total") - metric_value(
        before, "grpc_server_started_total"
    )
    return out


def _expected(seen: collections.Counter[grpc.StatusCode]) -> dict[str, float]:
    out: dict[str, float] = {name: seen[code] for code, name in CODES.items()}
    out["started"] = sum(seen.values())
    return out


def test_each_call_is_counted_once_under_its_code(
    published: Published, start_server: ServerFactory
) -> None:
    # One call at a time (so overlapping ones are shed), big requests scored on a thread (so
    # calls do overlap).
    server = start_server(
        published.registry_url,
        published.store_url,
        "--max-concurrent-rpcs", "1",
        "--offload-candidates", "8",
    )  # fmt: skip
    heavy = _request(400)
    calls = (
        [_request(3)] * 5  # OK
        + [_request(3, ["nope"])] * 3  # NOT_FOUND
        + [b"\xff\xff not a request"] * 2  # INVALID_ARGUMENT
    )
    before = server.metrics()
    seen: collections.Counter[grpc.StatusCode] = collections.Counter()
    lock = threading.Lock()
    with grpc.insecure_channel(server.target) as channel:
        call = raw_score(channel)
        for request in calls:
            seen[_call(call, request, 5.0)] += 1

        def burst() -> None:  # overlapping heavy calls: some are over the limit of one
            for _ in range(10):
                code = _call(call, heavy, 10.0)
                with lock:
                    seen[code] += 1

        threads = [threading.Thread(target=burst) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert seen[grpc.StatusCode.RESOURCE_EXHAUSTED] > 0, seen  # the burst did overlap
    assert set(seen) <= set(CODES), seen
    assert _deltas(before, server.metrics()) == _expected(seen)
    assert metric_value(server.metrics(), "bidscore_inflight_requests") == 0


def _names_in(expr: str) -> set[str]:
    # Recording rules (with a colon) are not exported by the server; functions and label
    # names do not start with these prefixes.
    return set(re.findall(r"\b((?:grpc_server|bidscore|process)_[a-z_]+)\b", expr))


def test_every_dashboard_and_alert_query_names_an_exported_metric(
    published: Published, start_server: ServerFactory, tmp_path: Path
) -> None:
    dashboard = json.loads((REPO / "deploy/monitoring/grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = yaml.safe_load((REPO / "deploy/monitoring/alerts.yaml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    wanted = set().union(*(_names_in(e) for e in exprs))
    assert {"grpc_server_handled_total", "bidscore_score_bucket"} <= wanted

    server = start_server(
        published.registry_url,
        published.store_url,
        "--score-sample-rate", "1",
        "--predlog", str(tmp_path / "predlog"),
    )  # fmt: skip
    # A running experiment, so that its series exist (datagen requests carry user_id).
    published.registry.start_experiment(
        Experiment(
            name="metrics-ab",
            model="ctr",
            mode="ab",
            control="1",
            treatment="2",
            share=0.5,
            key="user_id",
            salt="s",
        ),
        actor="tests",
        reason="test",
    )
    with grpc.insecure_channel(server.target) as channel:
        for _ in range(3):
            raw_score(channel)(_request(3), timeout=5)

        def routed() -> bool:
            raw_score(channel)(_request(3), timeout=5)
            return "bidscore_experiment_requests_total{" in server.metrics()

        wait_until(routed, timeout=30, message="experiment series")
    exported = {
        line.split("{")[0].split(" ")[0]
        for line in server.metrics().splitlines()
        if line and not line.startswith("#")
    }
    assert wanted - exported == set()
