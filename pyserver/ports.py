"""Check that the ports a server needs are free before starting it.

gRPC reports a port in use with a C-core log line and a generic "Failed to bind" error, and the
metrics endpoint with a traceback from `http.server`; checking first turns both into one
ConfigError line that names the port and its option. The check binds the way the servers do
(SO_REUSEADDR, so a connection lingering in TIME_WAIT is not mistaken for a listener), and
closes again at once: a server started in the instant between is still caught by its own bind.
"""

from __future__ import annotations

import errno
import socket

from pyserver.config import ServerConfig
from pyserver.errors import ConfigError


def _bind_error(host: str, port: int) -> OSError | None:
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc
    return None


def check_ports_free(config: ServerConfig) -> None:
    """ConfigError (one line) if the gRPC port or the metrics port cannot be bound."""
    wanted = [("--port", config.port)] if config.port else []
    wanted += [("--metrics-port", config.metrics_port)] if config.metrics_port else []
    for option, port in wanted:
        error = _bind_error(config.host, port)
        if error is None:
            continue
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{option}: port {port} on {config.host} is already in use (another server?"
                f" stop it or choose another {option})"
            )
        raise ConfigError(f"{option}: cannot listen on {config.host}:{port}: {error}")
