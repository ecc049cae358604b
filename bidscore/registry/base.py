"""What a registry is: versions per model, alias pointers moved by compare-and-set, the
history of every move, named locks with an expiry, run records, and each model's saved
(tuned) hyper-parameters.

Backends (`sqlite.py`, `dynamodb.py`) implement the `Registry` protocol; `open_registry(url)`
picks one by URL scheme.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bidscore.errors import ConflictError, InputError, NotFoundError
from bidscore.experiments import Experiment, ExperimentEvent, check_experiment
from bidscore.manifest import Manifest

# The package (`bidscore.registry`) is the public face, errors included; this module names
# only what it defines.
__all__ = ["Alias", "AliasMove", "Clock", "Registry", "Version", "effective_stack", "utc_now"]

# Seconds since the epoch; the registries read it for lock expiry (injectable in tests).
Clock = Callable[[], float]

MOVE_KINDS = ("promote", "rollback")
# Model, alias and lock names end up in keys and paths; keep them to a safe alphabet.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_name(what: str, value: str) -> str:
    """`value` if it is a valid model/alias/lock name, else a one-line InputError."""
    if not _NAME.fullmatch(value):
        raise InputError(
            f"invalid {what} name {value!r}: use letters, digits, '_', '.', '-' (max 128)"
        )
    return value


def utc_now() -> str:
    """Timestamps are ISO 8601 UTC strings with microseconds: sortable and readable."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Version:
    """One registered model version. `version` is "1", "2", ... per model."""

    model: str
    version: str
    manifest: Manifest
    artifact_uri: str
    created_at: str
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "manifest": self.manifest.to_json(),
            "artifact_uri": self.artifact_uri,
            "created_at": self.created_at,
            "key": self.key,
        }


@dataclass(frozen=True)
class Alias:
    """An alias pointer. `generation` counts its moves: 1 after the first, 0 = never set."""

    model: str
    alias: str
    version: str
    generation: int
    updated_at: str
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias, kept forever. `generation` is the alias's generation after it."""

    model: str
    alias: str
    generation: int
    from_version: str | None
    to_version: str
    actor: str
    reason: str
    at: str
    kind: str = "promote"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def effective_stack(moves: list[AliasMove]) -> list[str]:
    """The versions an alias has stood on, oldest first, with rolled-back ones removed.

    A promotion pushes its version; a rollback pops the current one. So repeated rollbacks
    walk further back through the promotions instead of toggling between two versions.
    """
    stack: list[str] = []
    for move in sorted(moves, key=lambda m: m.generation):
        if move.kind == "rollback" and stack:
            stack.pop()
            # The landing version is normally the new top already; if not, trust the record.
            if not stack or stack[-1] != move.to_version:
                stack.append(move.to_version)
        else:
            stack.append(move.to_version)
    return stack


class Registry(Protocol):
    """The registry interface shared by every backend (see docs/architecture.md)."""

    url: str

    def register_version(
        self, model: str, manifest: Manifest, artifact_uri: str, *, key: str | None = None
    ) -> Version:
        """Add the next version of `model`; an existing idempotency `key` returns its version."""
        ...

    def get_version(self, model: str, version: str) -> Version:
        """The version, or NotFoundError naming the model and version."""
        ...

    def find_version(self, model: str, key: str) -> Version | None:
        """The version registered with idempotency `key`, if any."""
        ...

    def list_versions(self, model: str | None = None) -> list[Version]:
        """Versions of one model (or every model), by model then version number."""
        ...

    def get_alias(self, model: str, alias: str) -> Alias | None:
        """The alias pointer, or None if it was never set."""
        ...

    def list_aliases(self, model: str) -> list[Alias]:
        """Every alias ever set for `model`, by name."""
        ...

    def set_alias(
        self,
        model: str,
        alias: str,
        version: str,
        *,
        expected_generation: int,
        actor: str,
        reason: str,
        kind: str = "promote",
    ) -> Alias:
        """Compare-and-set: move the alias only if its generation is `expected_generation`.

        The move and its history row commit together. ConflictError if the alias moved,
        NotFoundError if the version does not exist.
        """
        ...

    def alias_history(self, model: str, alias: str) -> list[AliasMove]:
        """Every move of the alias, oldest first."""
        ...

    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Take the named lock (or renew it, if `owner` holds it); an expired lock is taken over."""
        ...

    def release_lock(self, name: str, owner: str) -> None:
        """Release the lock if `owner` holds it; otherwise do nothing."""
        ...

    def put_run(self, run: dict[str, Any]) -> None:
        """Create or replace a run record; it needs string keys `run_id` and `model`."""
        ...

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run record, or NotFoundError."""
        ...

    def list_runs(self, model: str) -> list[dict[str, Any]]:
        """Run records of `model`, in the order they were first put."""
        ...

    def put_params(self, model: str, record: dict[str, Any]) -> None:
        """Save (replace) the model's tuned hyper-parameter record (`control tune --save`)."""
        ...

    def get_params(self, model: str) -> dict[str, Any] | None:
        """The model's saved hyper-parameter record, or None if none was saved."""
        ...

    def start_experiment(self, experiment: Experiment, *, actor: str, reason: str) -> Experiment:
        """Record a running experiment (generation 1) with its "start" event, atomically.

        ConflictError if the name is taken or the model already has a running experiment
        (of two concurrent starts exactly one wins); NotFoundError if an arm's version does
        not exist; InputError for invalid fields (`check_experiment`).
        """
        ...

    def get_experiment(self, name: str) -> Experiment:
        """The experiment, or NotFoundError."""
        ...

    def list_experiments(self, model: str | None = None) -> list[Experiment]:
        """Experiments (of one model, or all), by name."""
        ...

    def running_experiments(self) -> list[Experiment]:
        """Every running experiment (what a server polls), by model."""
        ...

    def stop_experiment(
        self,
        name: str,
        *,
        expected_generation: int,
        actor: str,
        reason: str,
        promoted: str | None = None,
    ) -> Experiment:
        """Compare-and-set: stop the experiment if its generation is `expected_generation`.

        ConflictError if it moved (or is already stopped), NotFoundError if unknown.
        """
        ...

    def experiment_history(self, name: str) -> list[ExperimentEvent]:
        """Every state move of the experiment, oldest first."""
        ...


def check_alias_move(model: str, alias: str, version: str, kind: str) -> int:
    """The version number an alias move targets, once every argument has been validated.

    Every backend's `set_alias` starts here, so bad input fails the same way before any
    backend-specific read or write.
    """
    check_name("model", model)
    check_name("alias", alias)
    if kind not in MOVE_KINDS:
        raise InputError(f"alias move kind must be one of {MOVE_KINDS}, not {kind!r}")
    return version_number(model, version)


def check_run(run: dict[str, Any]) -> tuple[str, str]:
    """The run's (run_id, model); both must be non-empty strings."""
    run_id, model = run.get("run_id"), run.get("model")
    if not isinstance(run_id, str) or not run_id or not isinstance(model, str) or not model:
        raise InputError("a run record needs non-empty string fields 'run_id' and 'model'")
    return run_id, model


def starting(experiment: Experiment, actor: str, reason: str) -> Experiment:
    """The record `start_experiment` writes: validated, running, generation 1, stamped."""
    check_experiment(experiment)
    return experiment.replace(
        state="running",
        generation=1,
        started_at=utc_now(),
        started_by=actor,
        reason=reason,
        stopped_at=None,
        stopped_by=None,
        stop_reason=None,
        promoted=None,
    )


def stopping(
    current: Experiment, expected_generation: int, actor: str, reason: str, promoted: str | None
) -> Experiment:
    """The record `stop_experiment` writes over `current`, or ConflictError."""
    if promoted not in (None, "treatment", "control"):
        raise InputError(f"promoted must be 'treatment', 'control' or None, not {promoted!r}")
    if current.generation != expected_generation:
        raise ConflictError(
            f"experiment {current.name!r} moved: expected generation {expected_generation},"
            f" it is now {current.generation} ({current.state}); read it again and retry"
        )
    if not current.running:
        raise ConflictError(f"experiment {current.name!r} is already stopped")
    return current.replace(
        state="stopped",
        generation=current.generation + 1,
        stopped_at=utc_now(),
        stopped_by=actor,
        stop_reason=reason,
        promoted=promoted,
    )


def event_of(experiment: Experiment, kind: str) -> ExperimentEvent:
    """The history row of the move that produced `experiment`."""
    start = kind == "start"
    return ExperimentEvent(
        name=experiment.name,
        generation=experiment.generation,
        kind=kind,
        state=experiment.state,
        actor=experiment.started_by if start else experiment.stopped_by or "",
        reason=experiment.reason if start else experiment.stop_reason or "",
        at=experiment.started_at if start else experiment.stopped_at or "",
    )


def running_conflict(model: str, other: str) -> ConflictError:
    return ConflictError(
        f"model {model!r} already has a running experiment {other!r}:"
        f" stop it first (control experiment stop {other})"
    )


def version_number(model: str, version: str) -> int:
    """Parse "7" to 7; anything else is an unknown version (NotFoundError), not a crash."""
    if not version.isdigit() or int(version) < 1:
        raise NotFoundError(f"model {model!r} has no version {version!r} (versions are 1, 2, ...)")
    return int(version)
