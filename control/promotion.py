"""Promotion and rollback: move an alias to a version, safely.

A promotion runs, in order:

1. **Integrity** (never skipped, not even with `force`): download the artifact from the store,
   check its SHA-256 against the manifest, parse it (`rust_core.load_model` verifies header and
   payload checksums), and check its feature-spec fingerprint against the manifest and against
   the fingerprint the feature code running now computes for the model's spec. A model trained
   on other features would be refused by every server, so it never reaches an alias.
2. **Metric gates** against the version the alias points at now (skipped by `force`, and when
   the alias is unset): the candidate's held-out logloss may exceed the current one by at most
   `LOGLOSS_TOLERANCE` (relative), and its AUC may fall short by at most `AUC_TOLERANCE`
   (absolute). The tolerances absorb the noise of a retrain on fresh data: a day's holdout of
   ~100k rows moves logloss by a few tenths of a percent and AUC by a few thousandths.
   A refused promotion names the gate and both values.
3. **Compare-and-set** of the alias on the generation read in step 2 (or the caller's
   `expected_generation`): if anyone moved the alias in between, ConflictError, nothing changes.

A rollback moves the alias back to the version before the current one in its history (see
`bidscore.registry.effective_stack`), after the same integrity checks; metric gates do not
apply: a rollback is the way back from a bad promotion.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bidscore.errors import BidscoreError, ConflictError, IntegrityError, NotFoundError, StoreError
from bidscore.manifest import Manifest, verify_artifact
from bidscore.registry import Alias, Registry, Version, effective_stack
from bidscore.store import ArtifactStore
from control.errors import GateError
from features.catalog import Catalog

# Relative increase of held-out logloss allowed over the current version (0.5 %).
LOGLOSS_TOLERANCE = 0.005
# Absolute decrease of held-out AUC allowed below the current version.
AUC_TOLERANCE = 0.005


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict; `detail` says what was compared, with both values."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class PromotionResult:
    alias: Alias
    previous: str | None
    gates: list[GateResult]
    forced: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias.to_dict(),
            "previous_version": self.previous,
            "gates": [asdict(g) for g in self.gates],
            "forced": self.forced,
        }


# Extra gates (e.g. data drift, from control.monitor) take (current manifest, candidate
# manifest) and return the reasons to refuse; an empty list passes.
ExtraGate = Callable[[Manifest, Manifest], list[str]]


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
) -> None:
    """Fetch `version`'s artifact into `workdir` (or read it in place from a local store) and
    run every integrity check on it."""
    local = store.local_path(version.artifact_uri)
    if local is None:
        local = workdir / "model.bin"
        try:
            store.get(version.artifact_uri, local)
        except StoreError as exc:
            raise IntegrityError(f"{version.model} v{version.version}: {exc}") from exc
    try:
        verify_artifact(local, version.manifest, current_fingerprint(version.model, catalog))
    except IntegrityError as exc:
        raise IntegrityError(f"{version.model} v{version.version} refused: {exc}") from exc


def _metric(manifest: Manifest, name: str) -> float | None:
    value = manifest.metrics.get(name)
    return float(value) if isinstance(value, int | float) else None


def metric_gates(current: Version, candidate: Version) -> list[GateResult]:
    """The logloss and AUC gates of `candidate` against `current` (module docstring)."""
    results: list[GateResult] = []
    old, new = _metric(current.manifest, "logloss"), _metric(candidate.manifest, "logloss")
    if old is None or new is None:
        results.append(GateResult("logloss", False, "logloss missing from a manifest"))
    else:
        limit = old * (1 + LOGLOSS_TOLERANCE)
        results.append(
            GateResult(
                "logloss",
                new <= limit,
                f"logloss v{candidate.version} {new:.6f} vs v{current.version} {old:.6f}"
                f" (allowed <= {limit:.6f}, +{LOGLOSS_TOLERANCE:.1%})",
            )
        )
    old, new = _metric(current.manifest, "auc"), _metric(candidate.manifest, "auc")
    if old is None or new is None:
        results.append(GateResult("auc", False, "auc missing from a manifest"))
    else:
        floor = old - AUC_TOLERANCE
        results.append(
            GateResult(
                "auc",
                new >= floor,
                f"auc v{candidate.version} {new:.6f} vs v{current.version} {old:.6f}"
                f" (allowed >= {floor:.6f}, -{AUC_TOLERANCE})",
            )
        )
    return results


def promote(
    registry: Registry,
    store: ArtifactStore,
    model: str,
    version: str,
    *,
    alias: str = "production",
    actor: str,
    reason: str = "",
    force: bool = False,
    expected_generation: int | None = None,
    expected_version: str | None = None,
    catalog: Catalog | None = None,
    extra_gates: list[ExtraGate] | None = None,
) -> PromotionResult:
    """Verify, gate and compare-and-set `alias` of `model` to `version` (module docstring).

    `expected_version` ("none" = unset) refuses with ConflictError unless the alias points
    there now: operators who decided on what they saw are never silently overruled.
    Raises NotFoundError, IntegrityError, GateError or ConflictError; nothing moves unless
    everything passed.
    """
    candidate = registry.get_version(model, version)
    current_alias = registry.get_alias(model, alias)
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
    with tempfile.TemporaryDirectory(prefix="bidscore-promote-") as tmp:
        fetch_and_verify(store, candidate, Path(tmp), catalog)
    gates: list[GateResult] = []
    if current_alias is not None and not force:
        current = registry.get_version(model, current_alias.version)
        gates = metric_gates(current, candidate)
        for gate in extra_gates or []:
            refusals = gate(current.manifest, candidate.manifest)
            # Named after the gate's module (control.monitor.drift -> "drift").
            name = getattr(gate, "__module__", "extra").rsplit(".", 1)[-1]
            gates.extend(GateResult(name, False, reason) for reason in refusals)
        failed = [g for g in gates if not g.passed]
        if failed:
            raise GateError(
                f"promotion of {model} v{candidate.version} to {alias} refused by gate"
                f" {failed[0].name}: {'; '.join(g.detail for g in failed)}"
                " (use --force to skip metric gates)"
            )
    moved = registry.set_alias(
        model,
        alias,
        candidate.version,
        expected_generation=expected_generation,
        actor=actor,
        reason=reason or ("promote --force" if force else "promote"),
        kind="promote",
    )
    return PromotionResult(
        moved, current_alias.version if current_alias else None, gates, forced=force
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
    alias: str = "production",
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
