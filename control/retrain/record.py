"""The run record: what a retraining run was asked, what each step did, and what it decided.

The record is written to the registry when the run starts and again after every step, so a
run that dies leaves a record saying how far it got; `control runs list/show` read it back.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

# Final states of a run. "running" is the only non-final one; a run found "running" by the
# next holder of the model's lock died without finishing and is marked "abandoned".
FINISHED = ("succeeded", "noop", "stopped", "failed", "abandoned")


class RunRegistry(Protocol):
    """The registry calls that keep run records."""

    def put_run(self, run: dict[str, Any]) -> None: ...

    def list_runs(self, model: str) -> list[dict[str, Any]]: ...


def utc_now() -> str:
    """ISO-8601 UTC timestamp with seconds, as every record field uses."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id(model: str) -> str:
    """Sortable by start time, unique across hosts: `ctr-20261127T011500Z-3f9a1c`."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{model}-{stamp}-{secrets.token_hex(3)}"


def run_owner(run_id: str) -> str:
    """Who holds the lock: readable in the registry when a human asks why a run waits."""
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"


class StepFailedError(Exception):
    """Raised inside a step to fail it with a reason but without a traceback."""


class RunRecorder:
    """Builds one run record and persists it (unless `persist` is off, as in --dry-run)."""

    def __init__(
        self, registry: RunRegistry | None, model: str, inputs: dict[str, Any], *, persist: bool
    ) -> None:
        self.registry = registry
        self.persist = persist
        run_id = new_run_id(model)
        self.run: dict[str, Any] = {
            "run_id": run_id,
            "model": model,
            "kind": "retrain",
            "status": "running",
            "started_at": utc_now(),
            "finished_at": None,
            "owner": run_owner(run_id),
            "inputs": inputs,
            "key": None,
            "steps": [],
            "decision": None,
            "version": None,
            "error": None,
        }

    @property
    def run_id(self) -> str:
        """The run's id, as `control runs show` takes it."""
        return str(self.run["run_id"])

    def save(self) -> None:
        """Write the record as it stands now."""
        if self.persist and self.registry is not None:
            self.registry.put_run(self.run)

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a step; the body fills the yielded `detail` dict. A raise fails the step."""
        detail: dict[str, Any] = {}
        entry: dict[str, Any] = {
            "name": name,
            "status": "running",
            "started_at": utc_now(),
            "seconds": None,
            "detail": detail,
        }
        self.run["steps"].append(entry)
        self.save()
        started = time.monotonic()
        try:
            yield detail
        except BaseException as exc:
            entry["status"] = "failed"
            entry["error"] = " ".join(str(exc).split()) or type(exc).__name__
            raise
        else:
            entry["status"] = "ok"
        finally:
            entry["seconds"] = round(time.monotonic() - started, 3)
            self.save()

    def skip(self, name: str, reason: str) -> None:
        """Record a step that did not need to run, and why."""
        self.run["steps"].append(
            {
                "name": name,
                "status": "skipped",
                "started_at": utc_now(),
                "seconds": 0.0,
                "detail": {"reason": reason},
            }
        )
        self.save()

    def finish(self, status: str, decision: dict[str, Any], error: str | None = None) -> None:
        """Close the record with its final state and decision."""
        if status not in FINISHED:
            raise ValueError(f"unknown run status {status!r}")
        self.run["status"] = status
        self.run["decision"] = decision
        self.run["error"] = error
        self.run["finished_at"] = utc_now()
        self.save()


def mark_abandoned(registry: RunRegistry, model: str, by_run: str) -> list[str]:
    """Close records of earlier runs that died while holding the model's lock.

    Only the current lock holder calls this: while it holds the lock no other run can be
    alive, so any record still "running" belongs to a dead process.
    """
    closed = []
    for run in registry.list_runs(model):
        if run.get("status") == "running" and run.get("run_id") != by_run:
            run["status"] = "abandoned"
            run["finished_at"] = utc_now()
            run["error"] = f"the run died before finishing; found by {by_run}"
            registry.put_run(run)
            closed.append(str(run["run_id"]))
    return closed
