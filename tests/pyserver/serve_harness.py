"""The scoring-server suite's harness: training small models, publishing them to a registry,
running `python -m control serve` as a real subprocess on 127.0.0.1, and talking to it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

import rust_core
from bidscore.manifest import Manifest, file_sha256
from bidscore.registry import Registry, open_registry
from bidscore.registry.base import utc_now
from bidscore.store import open_store
from bidscore.v1 import scorer_pb2
from features.spec import ModelSpec
from features.tokenize import tokenize_table
from pyserver.metrics import grpc_code_name
from tests.waiting import wait_until

HERE = Path(__file__).parent

SCORE_METHOD = "/bidscore.v1.Scorer/Score"
SPECS_REF = "tests.pyserver.serve_specs:SPECS"
MODELS = ("ctr", "cvr", "win")
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train(spec: ModelSpec, table: pa.Table, seed: int, epochs: int) -> rust_core.Model:
    data = tokenize_table(table, spec, label="click")
    if spec.algorithm == "ffm":
        return rust_core.train_ffm(
            data, k=2, epochs=epochs, seed=seed, bits=spec.bits, fingerprint=spec.fingerprint
        )
    return rust_core.train_lr(
        data, epochs=epochs, seed=seed, bits=spec.bits, fingerprint=spec.fingerprint
    )


@dataclass(frozen=True)
class TrainedModel:
    name: str
    path: Path
    model: rust_core.Model


@dataclass
class Published:
    registry_url: str
    store_url: str
    registry: Registry
    versions: dict[str, list[str]] = field(default_factory=dict)

    def publish(
        self,
        name: str,
        path: Path,
        *,
        checksum: str,
        fingerprint: str,
        profile: dict[str, Any] | None = None,
    ) -> str:
        store = open_store(self.store_url)
        key = f"{name}/{path.stem}-{len(self.registry.list_versions(name)) + 1}.model"
        uri = store.put(path, key)
        manifest: dict[str, Any] = {
            "model": name,
            "checksum": checksum,
            # As `control train` publishes (the servers check `checksum`; `control promote` and
            # `control experiment start` also the file's SHA-256).
            "sha256": file_sha256(path),
            "fingerprint": fingerprint,
            "profile": profile or {},
            "created_at": utc_now(),
        }
        version = self.registry.register_version(name, Manifest.from_json(manifest), uri).version
        self.versions.setdefault(name, []).append(version)
        return version

    def promote(self, name: str, version: str) -> None:
        current = self.registry.get_alias(name, "production")
        self.registry.set_alias(
            name,
            "production",
            version,
            expected_generation=current.generation if current else 0,
            actor="tests",
            reason="test",
        )


def publish_trained(
    registry_url: str, store_url: str, trained: dict[str, list[TrainedModel]]
) -> Published:
    pub = Published(registry_url, store_url, open_registry(registry_url))
    for name, versions in trained.items():
        for entry in versions:
            pub.publish(
                name, entry.path, checksum=entry.model.checksum, fingerprint=entry.model.fingerprint
            )
        pub.promote(name, pub.versions[name][0])
    return pub


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log_path: Path
    workers: int = 1

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self, service: str = "", timeout: float = 2.0) -> int:
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            return int(reply.status)

    def wait_serving(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            with contextlib.suppress(grpc.RpcError, OSError):
                # Health answers from whichever worker took the connection; every worker
                # reports its own `bidscore_ready` series.
                if (
                    self.health() == health_pb2.HealthCheckResponse.SERVING
                    and self.ready_workers() >= self.workers
                ):
                    return
            time.sleep(0.1)
        pytest.fail(f"server not SERVING within {timeout}s:\n{self.log()[-3000:]}")

    def ready_workers(self) -> int:
        """Workers whose models are loaded and warmed (`bidscore_ready` 1, one series each)."""
        return sum(
            1
            for family in text_string_to_metric_families(self.metrics())
            if family.name == "bidscore_ready"
            for sample in family.samples
            if sample.value == 1
        )

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.read().decode()

    def polls(self) -> float:
        return metric_value(self.metrics(), "bidscore_registry_polls_total")

    def wait_for_polls(self, count: int = 2) -> None:
        """Block until the reloader has polled `count` more times (it saw what is there now)."""
        start = self.polls()
        wait_until(lambda: self.polls() >= start + count, timeout=30, message="registry polls")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"server ignored signal {sig} for {timeout}s:\n{self.log()[-3000:]}")


def handled(text: str, code: str) -> float:
    """Score calls counted under a status (`INVALID_ARGUMENT`, as grpc.StatusCode names it)."""
    return metric_value(
        text,
        "grpc_server_handled_total",
        grpc_method="Score",
        grpc_code=grpc_code_name(grpc.StatusCode[code]),
    )


def metric_value(text: str, name: str, /, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 if absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        label_text = sample[len(name) :]
        if label_text and not label_text.startswith("{"):
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            return float(value)
    return 0.0


class ServerFactory:
    """Starts servers in `workdir`; `close()` kills whatever is still running."""

    def __init__(self, workdir: Path, free_port: Callable[[], int]) -> None:
        self.workdir = workdir
        self.free_port = free_port
        self.started: list[ServerProcess] = []

    def __call__(
        self,
        registry_url: str,
        store_url: str,
        *args: str,
        wait: bool = True,
        models: str = ",".join(MODELS),
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        port = port or self.free_port()
        metrics_port = self.free_port()
        log_path = self.workdir / f"server-{port}-{len(self.started)}.log"
        command = [
            sys.executable, "-m", "control", "serve",
            "--port", str(port),
            "--registry", registry_url,
            "--store", store_url,
            "--specs", SPECS_REF,
            "--models", models,
            "--cache-dir", str(self.workdir / "cache"),
            "--poll-interval", "0.2",
            "--metrics-port", str(metrics_port),
            "--grace", "10",
            *args,
        ]  # fmt: skip
        full_env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
        full_env.update(env or {})
        with log_path.open("wb") as log:
            # A session of its own: teardown kills the whole group, workers included.
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
            )
        workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
        server = ServerProcess(proc, port, metrics_port, log_path, workers)
        self.started.append(server)
        if wait:
            server.wait_serving()
        return server

    def close(self) -> None:
        for server in self.started:
            if server.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.proc.pid, signal.SIGKILL)
                server.proc.wait()


def request_bytes(payload: dict[str, Any], models: list[str] | None = None) -> bytes:
    """A datagen payload as a serialized ScoreRequest."""
    request = scorer_pb2.ScoreRequest(request_id=payload["request_id"], models=models or [])
    request.context.update(payload["context"])
    for cand in payload["candidates"]:
        request.candidates.add(id=cand["id"]).features.update(cand["features"])
    return request.SerializeToString()


def raw_score(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable:
    """Score with bytes in and bytes out (no client-side serialisation)."""
    return channel.unary_unary(SCORE_METHOD)


def score(channel: grpc.Channel, request: bytes, timeout: float = 10.0) -> scorer_pb2.ScoreResponse:
    return scorer_pb2.ScoreResponse.FromString(raw_score(channel)(request, timeout=timeout))
