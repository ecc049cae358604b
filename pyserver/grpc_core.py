"""The gRPC core settings a server process runs with.

grpc core reads `GRPC_EXPERIMENTS` once, when `grpc` is first imported, so `configure()` must
run before that import: `pyserver.workers` (the server's entry point) calls it before its own
imports, and the workers it forks inherit the setting.

grpcio 1.85 serves sockets through EventEngine endpoints: a socket read completes on an
event-engine pool thread, which hands it to the completion-queue poller thread, which wakes the
asyncio loop. With the listener and the endpoints back on grpc's epoll poller (the default
before EventEngine), the poller thread reads the socket itself: one thread hop fewer per read.
Measured on the project's 2-core machine (docs/benchmarks.md, "gRPC core settings"): context
switches per ScoreStream message 3.3-4.1 -> 2.2-2.3; server CPU per stream message 30 % lower
with one worker (6 % with two, whose loops sleep between messages), per unary call 12 %.

An operator's own `GRPC_EXPERIMENTS` is left as it is (an empty value turns this off).
"""

from __future__ import annotations

import os
import sys

EXPERIMENTS_ENV = "GRPC_EXPERIMENTS"
SERVER_EXPERIMENTS = "-event_engine_listener,-event_engine_for_all_other_endpoints"


def configure() -> str | None:
    """Give this process (and the workers it forks) the server's gRPC experiments, unless the
    environment already sets them. Returns the experiments in effect, or None when grpc was
    imported already and the setting can no longer take effect."""
    if "grpc" in sys.modules:
        return None
    return os.environ.setdefault(EXPERIMENTS_ENV, SERVER_EXPERIMENTS)


def describe(configured: str | None) -> str:
    """One line for the start-up log, from what `configure()` returned."""
    if configured is None:
        return f"{EXPERIMENTS_ENV} left alone (grpc was imported before pyserver.workers)"
    return f"{EXPERIMENTS_ENV}={configured or '(empty: grpc defaults)'}"
