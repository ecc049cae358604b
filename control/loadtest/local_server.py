"""A scoring server started for the load test itself, on the embedded defaults."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from control.loadtest.server_process import ServerProcess, server_process

HOST = "127.0.0.1"


@contextmanager
def local_server(
    models: Sequence[str],
    *,
    workers: int = 1,
    specs: str | None = None,
    port: int | None = None,
    extra_args: Sequence[str] = (),
    ready_timeout_s: float = 60.0,
) -> Iterator[ServerProcess]:
    """`python -m control serve` on 127.0.0.1, serving `models` from the default registry and store
    (`BIDSCORE_HOME`, or `BIDSCORE_REGISTRY` / `BIDSCORE_STORE`); stopped when the block ends.

    `specs` is the server's `--specs module:attribute` (default: the project's own specs)."""
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "control",
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--models",
        ",".join(models),
        *(["--specs", specs] if specs else []),
        *extra_args,
    ]
    with server_process(command, f"{HOST}:{port}", ready_timeout_s=ready_timeout_s) as server:
        yield server


def free_port() -> int:
    # The kernel picks; the short window before the server binds it is fine on one machine.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
