"""The address under load: parsed, kept on this host unless asked otherwise, and probed."""

from __future__ import annotations

import ipaddress
import socket

import grpc

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


def wait_for_target(target: str, timeout_s: float, tls: ClientTls | None = None) -> None:
    """Return once a gRPC connection to `target` is up; one clear error when none comes."""
    channel = tls.channel(target) if tls else grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    except grpc.FutureTimeoutError as exc:
        raise LoadTestError(
            f"target {target} does not answer: no gRPC connection within {timeout_s:g}s"
        ) from exc
    finally:
        channel.close()


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
