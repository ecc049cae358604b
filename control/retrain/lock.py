"""The registry lock that keeps two retraining runs for one model from overlapping.

The lock has a short time-to-live and a heartbeat thread renews it while the run is alive,
so a run that dies (SIGKILL, a lost machine) stops renewing and its lock expires on its own:
the next scheduled run takes over without anyone cleaning up by hand.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Protocol

from bidscore.errors import BidscoreError


class LockRegistry(Protocol):
    """The two registry calls the lock needs (every registry backend has them)."""

    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> bool: ...

    def release_lock(self, name: str, owner: str) -> None: ...


class AlreadyRunningError(BidscoreError):
    """Another live run holds the model's lock."""


class LockLostError(BidscoreError):
    """The heartbeat could not renew the lock: another run may have taken it over."""


def lock_name(model: str) -> str:
    """One lock per model: runs for different models may overlap, runs for one model never."""
    return f"retrain.{model}"


class RunLock:
    """Context manager: acquire (or refuse), renew in the background, release on exit."""

    def __init__(
        self,
        registry: LockRegistry,
        model: str,
        owner: str,
        ttl_seconds: float,
        *,
        heartbeat_seconds: float | None = None,
    ) -> None:
        self._registry = registry
        self._model = model
        self._name = lock_name(model)
        self._owner = owner
        self._ttl = ttl_seconds
        # Renew at a third of the TTL by default, so two missed beats still leave the lock ours.
        self._beat = heartbeat_seconds if heartbeat_seconds is not None else ttl_seconds / 3
        self.renewals = 0
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLock:
        if not self._registry.acquire_lock(self._name, self._owner, self._ttl):
            raise AlreadyRunningError(
                f"a retrain run for model {self._model!r} is already running "
                f"(registry lock {self._name!r}; a dead run's lock expires within {self._ttl:g}s)"
            )
        self._thread = threading.Thread(target=self._heartbeat, name="retrain-lock", daemon=True)
        self._thread.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._beat):
            try:
                renewed = self._registry.acquire_lock(self._name, self._owner, self._ttl)
            except Exception:  # a registry blip: the next beat retries, check() decides
                continue
            self.renewals += 1
            if not renewed:
                self._lost.set()
                return

    def check(self) -> None:
        """Raise LockLostError before a step that must not run without the lock."""
        if self._lost.is_set() or not self._registry.acquire_lock(
            self._name, self._owner, self._ttl
        ):
            self._lost.set()
            raise LockLostError(
                f"lost the registry lock {self._name!r} (held too long without renewal?)"
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self._lost.is_set():
            self._registry.release_lock(self._name, self._owner)
