"""The one Prometheus scrape endpoint of a server.

- One worker: the worker serves its own registry on `--metrics-port` from its event loop
  (`pyserver.metrics_http`).
- Several workers: before any worker exists (and before prometheus_client is imported in this
  process) the supervisor points `PROMETHEUS_MULTIPROC_DIR` at a fresh private directory; each
  forked worker then writes its metrics there, and the supervisor serves their aggregate on
  `--metrics-port` (counters and histograms summed, gauges by their `multiprocess_mode`), with
  its own process collector, from an event loop in a thread of its own. A worker that dies is
  marked dead, so its live gauges vanish; the directory is removed when the server stops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pyserver.errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _LoopThread:
    """A `MetricsServer` on an event loop of its own, in a daemon thread: the supervisor's
    main thread sits in `os.wait()`."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        from pyserver.metrics_http import MetricsServer  # noqa: PLC0415 -- see the module doc

        self._loop = asyncio.new_event_loop()
        self._server = MetricsServer(registry)
        started: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._server.start(host, port))
            except OSError as exc:
                started.set_exception(exc)
                return
            started.set_result(None)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="bidscore-metrics", daemon=True)
        self._thread.start()
        try:
            started.result(timeout=10)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from exc

    def shutdown(self) -> None:
        if not self._loop.is_running():
            return
        closing = asyncio.run_coroutine_threadsafe(self._server.close(), self._loop)
        with contextlib.suppress(Exception):
            closing.result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


class Aggregate:
    """The supervisor's side of multiprocess mode (see the module doc)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def serve(self, host: str, port: int) -> _LoopThread:
        from prometheus_client import (  # noqa: PLC0415 -- imported after the env is set
            PROCESS_COLLECTOR,
            CollectorRegistry,
            multiprocess,
        )

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        registry.register(PROCESS_COLLECTOR)
        return _LoopThread(registry, host, port)

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
