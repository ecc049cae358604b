"""A gRPC server run as a child process group: started, awaited until healthy, always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from control.loadtest.errors import LoadTestError

STOP_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class ServerProcess:
    pid: int
    target: str


@contextmanager
def server_process(
    command: Sequence[str],
    target: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    ready_timeout_s: float = 60.0,
) -> Iterator[ServerProcess]:
    """Run `command` (a server that will listen on `target`) until the block ends.

    Ready means the standard health service answers SERVING; the whole process group gets
    SIGTERM at the end, then SIGKILL if it has not drained within the grace period.
    """
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            _wait_healthy(proc, target, ready_timeout_s, log)
            yield ServerProcess(pid=proc.pid, target=target)
        finally:
            _stop_group(proc)


def _wait_healthy(
    proc: subprocess.Popen[bytes], target: str, timeout_s: float, log: IO[str]
) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LoadTestError(
                    f"server exited with code {proc.returncode} before serving: {_tail(log)}"
                )
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise LoadTestError(f"server on {target} not serving within {timeout_s:g}s: {_tail(log)}")


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_GRACE_SECONDS)
    # Workers forked by the server may outlive their parent; the group takes them all.
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _tail(log: IO[str], chars: int = 400) -> str:
    log.flush()
    log.seek(0)
    text = " ".join(log.read().split())
    return text[-chars:] or "(no output)"
