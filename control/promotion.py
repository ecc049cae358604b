"""Promotion and rollback: move an alias to a version, safely.

A promotion runs, in order:

1. **Integrity** (never skipped, not even with `force`): download the artifact from the store,
   check its SHA-256 against the manifest, parse it (`rust_core.load_model` verifies header and
   payload checksums), and check its feature-spec fingerprint against the manifest and against
   the fingerprint the feature code running now computes for the model's spec. A model trained
   on other features would be refused by every server, so it never reaches an alias.
2. **Measurement**: with a `rescore` function (`control promote --data LOGS`, or the
   candidate's own validation rows when its logs are still readable) the candidate and the
   version the alias points at now are scored on the *same* rows; without one, each
   version's manifest metrics are used, which were measured on different rows (the
   `Evaluation` says which, and the CLI prints it).
3. **Gates** (a failure refuses, unless `force`; a forced promotion records the gates it
   overrode in the alias history's reason):
   - base rate: the candidate's normalised entropy must be below 1, i.e. it must beat always
     predicting the average rate; this is the only metric gate of a first version (alias
     unset);
   - against the current version: the candidate's logloss may exceed the current one by at
     most `LOGLOSS_TOLERANCE` (relative), and its AUC may fall short by at most
     `AUC_TOLERANCE` (absolute). The tolerances absorb the noise of a retrain on fresh data: a
     day's holdout of ~100k rows moves logloss by a few tenths of a percent and AUC by a few
     thousandths. A refused promotion names the gate and both values;
   - extra gates (the monitoring drift gate) against the current version.
4. **Compare-and-set** of the alias on the generation read in step 2 (or the caller's
   `expected_generation`): if anyone moved the alias in between, ConflictError, nothing changes.

A rollback moves the alias back to the version before the current one in its history (see
`bidscore.registry.effective_stack`), after the same integrity checks; metric gates do not
apply: a rollback is the way back from a bad promotion.
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import rust_core
from bidscore.errors import BidscoreError, ConflictError, IntegrityError, NotFoundError, StoreError
from bidscore.manifest import Manifest, verify_artifact
from bidscore.registry import Alias, Registry, Version, effective_stack
from bidscore.settings import DEFAULT_ALIAS
from bidscore.store import ArtifactStore
from control.errors import GateError, UnknownAliasError
from features.catalog import Catalog

# Relative increase of held-out logloss allowed over the current version (0.5 %).
LOGLOSS_TOLERANCE = 0.005
# Absolute decrease of held-out AUC allowed below the current version.
AUC_TOLERANCE = 0.005
# Normalised entropy of the constant base-rate predictor: a model must score below it.
BASE_RATE_NE = 1.0


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict; `detail` says what was compared, with both values."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Evaluation:
    """The metrics the gates compared, and on which rows they were measured."""

    candidate_version: str
    candidate: Mapping[str, Any]
    current_version: str | None
    current: Mapping[str, Any] | None
    # True: both versions scored on the same rows; False: each manifest's own validation rows.
    same_rows: bool
    rows: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": {"version": self.candidate_version, "metrics": dict(self.candidate)},
            "current": (
                None
                if self.current_version is None
                else {"version": self.current_version, "metrics": dict(self.current or {})}
            ),
            "same_rows": self.same_rows,
            "rows": self.rows,
        }


@dataclass(frozen=True)
class PromotionResult:
    alias: Alias
    previous: str | None
    gates: list[GateResult]
    forced: bool
    evaluation: Evaluation | None = None

    @property
    def overridden(self) -> list[GateResult]:
        """The gates a forced promotion went past."""
        return [g for g in self.gates if not g.passed] if self.forced else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias.to_dict(),
            "previous_version": self.previous,
            "gates": [asdict(g) for g in self.gates],
            "forced": self.forced,
            "evaluation": None if self.evaluation is None else self.evaluation.to_dict(),
        }


# Extra gates (e.g. data drift, from control.monitor) take (current manifest, candidate
# manifest) and return the reasons to refuse; an empty list passes.
ExtraGate = Callable[[Manifest, Manifest], list[str]]

# Scores a verified model of a version on fixed rows: (version, model) -> metrics
# (control.metrics.Metrics.to_dict()). `description` says which rows, for the output.
Rescore = Callable[[Version, rust_core.Model], Mapping[str, Any]]


class RowsUnavailable(BidscoreError):
    """The rows to score both versions on cannot be read (promotion falls back to manifests)."""


@dataclass(frozen=True)
class RowSource:
    """Rows to score both versions on, and how to name them in the output."""

    rescore: Rescore
    description: str
    # False for the candidate's own validation rows: a first version's manifest already holds
    # its metrics on them, so there is nothing to re-read.
    for_first_version: bool = True


def current_fingerprint(model: str, catalog: Catalog | None = None) -> str:
    """The fingerprint the running feature code computes for `model`'s spec."""
    from features import catalog as catalogs  # noqa: PLC0415 -- the feature code, read late

    try:
        spec = (catalog or catalogs.load()).spec(model)
    except catalogs.CatalogError as exc:
        raise IntegrityError(f"the feature code has no spec for this model: {exc}") from None
    return str(spec.fingerprint)


def fetch_and_verify(
    store: ArtifactStore, version: Version, workdir: Path, catalog: Catalog | None = None
) -> rust_core.Model:
    """Fetch `version`'s artifact into `workdir` (or read it in place from a local store), run
    every integrity check on it and return the loaded model."""
    local = store.local_path(version.artifact_uri)
    if local is None:
        local = workdir / "model.bin"
        try:
            store.get(version.artifact_uri, local)
        except StoreError as exc:
            raise IntegrityError(f"{version.model} v{version.version}: {exc}") from exc
    try:
        return verify_artifact(local, version.manifest, current_fingerprint(version.model, catalog))
    except IntegrityError as exc:
        raise IntegrityError(f"{version.model} v{version.version} refused: {exc}") from exc


def _metric(metrics: Mapping[str, Any] | None, name: str) -> float | None:
    value = (metrics or {}).get(name)
    return float(value) if isinstance(value, int | float) else None


def base_rate_gate(version: str, metrics: Mapping[str, Any]) -> GateResult:
    """The candidate must beat always predicting the base rate: NE below `BASE_RATE_NE`."""
    ne = _metric(metrics, "ne")
    if ne is None:
        return GateResult("base rate", False, f"ne of v{version} is unknown")
    return GateResult(
        "base rate",
        ne < BASE_RATE_NE,
        f"ne v{version} {ne:.4f} (must be < {BASE_RATE_NE:g}: predicting the base rate"
        " everywhere scores 1)",
    )


def metric_gates(
    current_version: str,
    current: Mapping[str, Any] | None,
    candidate_version: str,
    candidate: Mapping[str, Any],
) -> list[GateResult]:
    """The logloss and AUC gates of the candidate's metrics against the current version's
    (module docstring)."""
    results: list[GateResult] = []
    old, new = _metric(current, "logloss"), _metric(candidate, "logloss")
    if old is None or new is None:
        results.append(GateResult("logloss", False, "logloss missing from a manifest"))
    else:
        limit = old * (1 + LOGLOSS_TOLERANCE)
        results.append(
            GateResult(
                "logloss",
                new <= limit,
                f"logloss v{candidate_version} {new:.6f} vs v{current_version} {old:.6f}"
                f" (allowed <= {limit:.6f}, +{LOGLOSS_TOLERANCE:.1%})",
            )
        )
    old, new = _metric(current, "auc"), _metric(candidate, "auc")
    if old is None or new is None:
        results.append(GateResult("auc", False, "auc missing from a manifest"))
    else:
        floor = old - AUC_TOLERANCE
        results.append(
            GateResult(
                "auc",
                new >= floor,
                f"auc v{candidate_version} {new:.6f} vs v{current_version} {old:.6f}"
                f" (allowed >= {floor:.6f}, -{AUC_TOLERANCE})",
            )
        )
    return results


def measure(
    candidate: Version,
    candidate_model: rust_core.Model,
    current: Version | None,
    current_model: rust_core.Model | None,
    rows: RowSource | None,
) -> Evaluation:
    """The metrics to judge on: both versions scored on `rows` when given (and the current
    model could be loaded), else each manifest's own metrics, with the reason."""
    current_version = None if current is None else current.version
    why = ""
    if rows is not None and current is not None and current_model is None:
        why = f"v{current.version}'s artifact cannot be loaded; "
    elif rows is not None and (current is not None or rows.for_first_version):
        try:
            return Evaluation(
                candidate.version,
                rows.rescore(candidate, candidate_model),
                current_version,
                None
                if current is None or current_model is None
                else rows.rescore(current, current_model),
                same_rows=True,
                rows=rows.description,
            )
        except RowsUnavailable as exc:
            why = f"{exc}; "
    if current is None:
        description = "the candidate's own validation rows (its manifest)"
    else:
        description = (
            f"{why}each version's own validation rows (manifests): different rows, not a"
            " like-for-like comparison; give --data LOGS to score both on the same rows"
        )
    return Evaluation(
        candidate.version,
        candidate.manifest.metrics,
        current_version,
        None if current is None else current.manifest.metrics,
        same_rows=current is None,
        rows=description,
    )


def promote(
    registry: Registry,
    store: ArtifactStore,
    model: str,
    version: str,
    *,
    alias: str = DEFAULT_ALIAS,
    actor: str,
    reason: str = "",
    force: bool = False,
    create_alias: bool = False,
    check_gates: bool = True,
    rows: RowSource | None = None,
    expected_generation: int | None = None,
    expected_version: str | None = None,
    catalog: Catalog | None = None,
    extra_gates: list[ExtraGate] | None = None,
) -> PromotionResult:
    """Verify, measure, gate and compare-and-set `alias` of `model` to `version` (module
    docstring).

    An alias the model does not have yet is created only when it is `DEFAULT_ALIAS` or
    `create_alias` is set (UnknownAliasError otherwise: a typo must not create a new pointer).
    `force` turns failed gates into a record in the alias history instead of a refusal;
    `check_gates=False` is for a caller that decided the gates itself (control retrain, on a
    shared holdout). `rows` scores both versions on the same rows (else manifests' metrics).
    `expected_version` ("none" = unset) refuses with ConflictError unless the alias points
    there now: operators who decided on what they saw are never silently overruled.
    Raises NotFoundError, IntegrityError, GateError or ConflictError; nothing moves unless
    everything passed (or was forced).
    """
    candidate = registry.get_version(model, version)
    current_alias = registry.get_alias(model, alias)
    if current_alias is None and not create_alias and alias != DEFAULT_ALIAS:
        raise UnknownAliasError(unknown_alias_message(registry, model, alias))
    if expected_version is not None:
        now = current_alias.version if current_alias else "none"
        if now != expected_version:
            raise ConflictError(
                f"{model}/{alias} points at {now}, not the expected {expected_version}"
            )
    # A caller that decided on an earlier read of the alias (control retrain) passes the
    # generation it saw, so a promotion made by someone else in between is never overwritten.
    if expected_generation is None:
        expected_generation = current_alias.generation if current_alias else 0
    if current_alias is not None and current_alias.version == candidate.version:
        raise BidscoreError(f"{model}/{alias} already points at version {candidate.version}")
    current = None if current_alias is None else registry.get_version(model, current_alias.version)
    gates: list[GateResult] = []
    evaluation: Evaluation | None = None
    with tempfile.TemporaryDirectory(prefix="bidscore-promote-") as tmp:
        candidate_model = fetch_and_verify(store, candidate, Path(tmp) / "candidate", catalog)
        if check_gates:
            current_model = None
            if current is not None and rows is not None:
                # The current version's file is only needed to score it; one that fails its
                # checks now falls back to its manifest's metrics rather than block a fix.
                try:
                    current_model = fetch_and_verify(store, current, Path(tmp) / "current", catalog)
                except IntegrityError:
                    current_model = None
            evaluation = measure(candidate, candidate_model, current, current_model, rows)
    if evaluation is not None:
        gates = _gates(candidate, current, evaluation, extra_gates or [])
        failed = [g for g in gates if not g.passed]
        if failed and not force:
            raise GateError(
                f"promotion of {model} v{candidate.version} to {alias} refused by gate"
                f" {failed[0].name}: {'; '.join(g.detail for g in failed)}"
                " (use --force to override, recorded in the history)"
            )
    overridden = [g for g in gates if not g.passed] if force else []
    moved = registry.set_alias(
        model,
        alias,
        candidate.version,
        expected_generation=expected_generation,
        actor=actor,
        reason=_history_reason(reason, force, overridden),
        kind="promote",
    )
    return PromotionResult(
        moved,
        current_alias.version if current_alias else None,
        gates,
        forced=force,
        evaluation=evaluation,
    )


def _gates(
    candidate: Version,
    current: Version | None,
    evaluation: Evaluation,
    extra_gates: list[ExtraGate],
) -> list[GateResult]:
    gates = [base_rate_gate(candidate.version, evaluation.candidate)]
    if current is None:
        return gates
    gates += metric_gates(
        current.version, evaluation.current, candidate.version, evaluation.candidate
    )
    for gate in extra_gates:
        refusals = gate(current.manifest, candidate.manifest)
        # Named after the gate's module (control.monitor.drift -> "drift").
        name = getattr(gate, "__module__", "extra").rsplit(".", 1)[-1]
        gates.extend(GateResult(name, False, refusal) for refusal in refusals)
    return gates


def _history_reason(reason: str, force: bool, overridden: list[GateResult]) -> str:
    """The alias history's reason; a forced promotion says which gates it went past."""
    text = reason or ("promote --force" if force else "promote")
    if overridden:
        text += "; forced past " + "; ".join(f"{g.name} gate ({g.detail})" for g in overridden)
    return text


def unknown_alias_message(registry: Registry, model: str, alias: str) -> str:
    """Which aliases `model` has, the closest to `alias`, and how to create it."""
    existing = [a.alias for a in registry.list_aliases(model)]
    known = ", ".join(existing) if existing else "none yet"
    close = difflib.get_close_matches(alias, [*existing, DEFAULT_ALIAS], n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"{model} has no alias {alias!r} (its aliases: {known}); {hint}"
        "pass --create-alias to create it"
    )


def rollback_target(registry: Registry, model: str, alias: str) -> tuple[Alias, str]:
    """The alias now and the version a rollback would move it to."""
    current = registry.get_alias(model, alias)
    if current is None:
        raise NotFoundError(f"{model}/{alias} has never been set: nothing to roll back")
    stack = effective_stack(registry.alias_history(model, alias))
    if len(stack) < 2:
        raise NotFoundError(
            f"{model}/{alias} is at version {current.version}, its first: no earlier version"
        )
    return current, stack[-2]


def rollback(
    registry: Registry,
    store: ArtifactStore,
    model: str,
    *,
    alias: str = DEFAULT_ALIAS,
    actor: str,
    reason: str = "",
    catalog: Catalog | None = None,
) -> PromotionResult:
    """Move `alias` back to the previous version in its history (integrity-checked, CAS)."""
    current, target = rollback_target(registry, model, alias)
    version = registry.get_version(model, target)
    with tempfile.TemporaryDirectory(prefix="bidscore-rollback-") as tmp:
        fetch_and_verify(store, version, Path(tmp), catalog)
    moved = registry.set_alias(
        model,
        alias,
        target,
        expected_generation=current.generation,
        actor=actor,
        reason=reason or f"rollback from {current.version}",
        kind="rollback",
    )
    return PromotionResult(moved, current.version, [], forced=False)
