"""The one Prometheus scrape endpoint of a server.

- One worker: the worker serves its own registry on `--metrics-port`.
- Several workers: before any worker exists (and before prometheus_client is imported in this
  process) the supervisor points `PROMETHEUS_MULTIPROC_DIR` at a fresh private directory; each
  forked worker then writes its metrics there, and the supervisor serves their aggregate on
  `--metrics-port` (counters and histograms summed, gauges by their `multiprocess_mode`), with
  its own process collector. A worker that dies is marked dead, so its live gauges vanish; the
  directory is removed when the server stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from pyserver.errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _Shutdown(Protocol):
    def shutdown(self) -> None: ...


def serve_registry(registry: CollectorRegistry, host: str, port: int) -> _Shutdown:
    """Serve `registry` on host:port from a daemon thread; ConfigError if the port is taken."""
    from prometheus_client import start_http_server  # noqa: PLC0415 -- see the module doc

    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from exc
    return server


class Aggregate:
    """The supervisor's side of multiprocess mode (see the module doc)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def serve(self, host: str, port: int) -> _Shutdown:
        from prometheus_client import (  # noqa: PLC0415 -- imported after the env is set
            PROCESS_COLLECTOR,
            CollectorRegistry,
            multiprocess,
        )

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        registry.register(PROCESS_COLLECTOR)
        return serve_registry(registry, host, port)

    def worker_died(self, pid: int) -> None:
        from prometheus_client import multiprocess  # noqa: PLC0415

        multiprocess.mark_process_dead(pid, path=self.directory)  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[Aggregate]:
    """A private metrics directory for this server's workers, removed afterwards."""
    if "prometheus_client" in sys.modules and not os.environ.get(MULTIPROC_ENV):
        # Values created before the variable is set would live in process memory only.
        raise ConfigError("internal: prometheus_client was imported before the workers' setup")
    directory = tempfile.mkdtemp(prefix="bidscore-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield Aggregate(directory)
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


def in_multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))
