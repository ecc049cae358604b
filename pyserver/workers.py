"""Run N worker processes on one port (SO_REUSEPORT), forked before any gRPC object exists.

gRPC's core threads and its event engine do not survive `fork`, and neither would the
reloader thread or rust_core's thread pools: so the parent only validates the settings,
compiles the feature plan (plain data) and forks; each child then builds its own server,
metrics endpoint (`--metrics-port + index`) and reloader. The kernel spreads connections over
the children. The parent forwards SIGTERM/SIGINT, restarts a child that dies unexpectedly
(a worker crash must not shrink the pool for good), and exits 0 only if every child did.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

import uvloop

from pyserver import grpc_core

# Before the imports below: grpc core reads its settings once, when grpc is imported, and they
# bring it in (pyserver.serving_features).
GRPC_EXPERIMENTS = grpc_core.configure()

from bidscore.registry import missing_registry  # noqa: E402
from pyserver.config import ServerConfig  # noqa: E402
from pyserver.errors import ConfigError  # noqa: E402
from pyserver.metrics_endpoint import Aggregate, multiprocess_dir  # noqa: E402
from pyserver.ports import check_ports_free  # noqa: E402
from pyserver.serving_features import ServingFeatures  # noqa: E402

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
# A child that keeps dying right after start is a configuration problem, not bad luck.
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0


def run_worker(config: ServerConfig, features: ServingFeatures, worker: int = 0) -> int:
    """Serve in this process until signalled; the exit code for the process."""
    # A fatal signal (SIGBUS from a truncated mapped model, SIGSEGV) kills the process before
    # any logging can run; faulthandler still writes its name and the Python stacks to stderr.
    faulthandler.enable()
    # Imported here: with several workers, prometheus_client (which pyserver.server brings)
    # must be imported only after the metrics directory is set (pyserver.metrics_endpoint).
    from pyserver.server import serve  # noqa: PLC0415

    uvloop.run(serve(config, features, worker))
    return 0


def run_server(
    config: ServerConfig, before_start: Callable[[ServerConfig], None] | None = None
) -> int:
    """The server's entry point: load the feature code, fork the workers, serve until
    signalled; the process exit code. Raises ConfigError for settings that cannot work,
    including a port already in use.

    `before_start` runs once the settings, feature code and ports checked out and before
    anything starts (the caller's own checks, e.g. `control serve` asking the registry which
    models have the alias); it may raise ConfigError too."""
    features = ServingFeatures.for_models(
        config.models, config.specs, config.max_candidates, config.max_models
    )
    check_ports_free(config)
    # A mistyped registry path would otherwise be created empty, and the server would wait
    # for aliases that never come; the path is in the message.
    missing = missing_registry(config.registry_url)
    if missing is not None:
        raise ConfigError(missing)
    if before_start is not None:
        before_start(config)
    log.info("gRPC core: %s", grpc_core.describe(GRPC_EXPERIMENTS))
    return run(config, features)


def run(config: ServerConfig, features: ServingFeatures) -> int:
    if config.workers == 1:
        return run_worker(config, features)
    with multiprocess_dir() as aggregate:
        return _Supervisor(config, features, aggregate).run()


def _exit(code: int) -> str:
    """`exited with 3`, or `was killed by SIGBUS (signal 7)` for a negative exit code."""
    if code >= 0:
        return f"exited with {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "an unknown signal"
    return f"was killed by {name} (signal {-code})"


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this child if the supervisor dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        log.warning(
            "could not set the parent-death signal; orphaned workers must be stopped by hand"
        )


class _Supervisor:
    def __init__(
        self, config: ServerConfig, features: ServingFeatures, aggregate: Aggregate
    ) -> None:
        self._config = config
        self._features = features
        self._aggregate = aggregate
        self._children: dict[int, int] = {}  # pid -> worker index
        self._stopping = False
        self._restarts: list[float] = []
        self._failed = False

    def _spawn(self, worker: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _die_with_parent()
                if os.getppid() != parent:  # the parent died before prctl took effect
                    os._exit(1)
                code = run_worker(self._config, self._features, worker)
            except BaseException:
                log.exception("worker %d failed", worker)
            finally:
                logging.shutdown()
                os._exit(code)
        self._children[pid] = worker

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        for worker in range(self._config.workers):
            self._spawn(worker)
        log.info("supervisor (pid %d) started %d workers", os.getpid(), len(self._children))
        # After the fork: the workers must not inherit the endpoint's thread and socket.
        endpoint = None
        if self._config.metrics_port:
            try:
                endpoint = self._aggregate.serve(self._config.host, self._config.metrics_port)
            except ConfigError as exc:
                log.error("%s; stopping the workers", exc)
                self._failed = True
                self._forward(signal.SIGTERM, None)
        try:
            return self._wait()
        finally:
            if endpoint is not None:
                endpoint.shutdown()

    def _wait(self) -> int:
        while self._children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in self._children:
                continue
            worker = self._children.pop(pid)
            self._aggregate.worker_died(pid)
            code = os.waitstatus_to_exitcode(status)
            if self._stopping:
                # A worker still starting when the stop came has no handler yet and dies of
                # the forwarded signal itself: an orderly stop, not a failure.
                forwarded = code in (-signal.SIGTERM, -signal.SIGINT)
                if code != 0 and not forwarded:
                    log.error("worker %d (pid %d) %s while stopping", worker, pid, _exit(code))
                self._failed = self._failed or (code != 0 and not forwarded)
                continue
            log.error("worker %d (pid %d) %s; restarting it", worker, pid, _exit(code))
            if self._may_restart():
                self._spawn(worker)
            else:
                log.error("workers keep dying; stopping the rest")
                self._failed = True
                self._forward(signal.SIGTERM, None)
        return 1 if self._failed else 0

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_SECONDS]
        self._restarts.append(now)
        return len(self._restarts) <= MAX_RESTARTS
