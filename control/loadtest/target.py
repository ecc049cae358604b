"""The address under load: parsed, kept on this host unless asked otherwise, and probed."""

from __future__ import annotations

import ipaddress
import socket
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from control.loadtest.errors import LoadTestError
from control.loadtest.tls import ClientTls

LOOPBACK_NAMES = frozenset({"localhost"})


def parse_target(target: str, *, allow_remote: bool = False) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) -> (host, port).

    A load test saturates what it hits, so anything but a loopback address needs
    `allow_remote`: pointing it at a shared or production host must be a decision.
    """
    host, sep, port_text = target.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LoadTestError(f"--target must be host:port, got {target!r}")
    if not allow_remote and not _is_loopback(host):
        raise LoadTestError(
            f"--target {target} is not a loopback address; pass --allow-remote to load it anyway"
        )
    return host, int(port_text)


def wait_for_target(
    target: str, timeout_s: float, ready_timeout_s: float = 0.0, tls: ClientTls | None = None
) -> None:
    """Return once a gRPC connection to `target` is up and, within `ready_timeout_s`, its
    health service says SERVING (a server started a moment ago is still loading its models);
    a target without a health service counts as ready. One clear error when either never
    comes."""
    # A server started a moment ago may not even listen yet: the ready timeout covers both.
    connect_s = max(timeout_s, ready_timeout_s)
    channel = tls.channel(target) if tls else grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=connect_s)
        _wait_serving(channel, target, ready_timeout_s)
    except grpc.FutureTimeoutError as exc:
        raise LoadTestError(
            f"target {target} does not answer: no gRPC connection within {connect_s:g}s"
        ) from exc
    finally:
        channel.close()


def _wait_serving(channel: grpc.Channel, target: str, timeout_s: float) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # no health service: nothing to wait
                return
        else:
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        if time.monotonic() >= deadline:
            raise LoadTestError(
                f"target {target} is not SERVING after {timeout_s:g}s (models still loading,"
                " or none promoted?)"
            )
        time.sleep(0.1)


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)
