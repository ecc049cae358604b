"""One retraining run: select -> validate -> train -> evaluate -> register -> promote -> record.

The run is idempotent and resumable through the registry alone:
- its idempotency key (model, feature spec, window with row counts, hyper-parameters) is the
  version's registration key and the artifact's name, so a second run for the same window
  finds the version instead of training, and a run killed before registering leaves nothing
  a restart would duplicate (the restart overwrites the same artifact key, then registers);
- a per-model registry lock with a heartbeat keeps two runs from overlapping, and expires
  when its holder dies;
- the alias generation read at the start is the compare-and-set's expected value, so an
  operator's manual promotion during the run is never overwritten.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import rust_core
from bidscore.errors import ConflictError
from bidscore.registry.base import Alias, Registry, Version
from bidscore.store.base import ArtifactStore
from control.exits import EXIT_OK, EXIT_STOPPED
from control.promotion import promote
from control.retrain import compare, data, trainer
from control.retrain.lock import RunLock
from control.retrain.params import idempotency_key
from control.retrain.partitions import Selection, select
from control.retrain.record import RunRecorder, mark_abandoned
from control.retrain.validate import ValidationPolicy, ValidationStoppedError, validate
from control.scale.executor import running_ray
from control.training import TrainedModel
from control.tuning.saved import saved_for, saved_params
from control.warm import load_parent
from features.catalog import load as load_catalog

Notify = Callable[[str], None]


@dataclass(frozen=True)
class RetrainRequest:
    """Everything `control retrain` was asked."""

    model: str
    data_root: str
    window_days: int = 7
    holdout_days: int = 1
    day: date | None = None
    alias: str = "production"
    auto_promote: bool = True
    dry_run: bool = False
    allow_gaps: bool = False
    algo: str | None = None  # None: the production version's algorithm, else the spec's
    overrides: dict[str, Any] = field(default_factory=dict)
    params_source: str = "saved"  # saved: start from `control tune --save`'s parameters
    policy: ValidationPolicy = field(default_factory=ValidationPolicy)
    lock_ttl: float = 120.0
    threads: int = 1
    actor: str = "control retrain"
    specs: str | None = None  # the model catalogue (features.catalog); None = the default
    # local: train from the tables read for validation; ray / ray://: prepare the window
    # into shards with Ray tasks and train from them (control.scale)
    executor: str = "local"
    on_disk: bool = False  # train out of core from shards (control.prepared)
    memory_budget: int | None = None  # bytes; above it the prepared rows train on disk
    warm_start: bool = False  # start from the alias's (production's) version's weights

    def inputs(self) -> dict[str, Any]:
        """The request as JSON-ready data for the run record."""
        return {
            "data_root": self.data_root,
            "window_days": self.window_days,
            "holdout_days": self.holdout_days,
            "date": self.day.isoformat() if self.day else None,
            "alias": self.alias,
            "auto_promote": self.auto_promote,
            "dry_run": self.dry_run,
            "allow_gaps": self.allow_gaps,
            "algo_override": self.algo,
            "overrides": dict(self.overrides),
            "params_source": self.params_source,
            "policy": asdict(self.policy),
            "threads": self.threads,
            "executor": self.executor,
            "on_disk": self.on_disk,
            "memory_budget": self.memory_budget,
            "warm_start": self.warm_start,
        }


@dataclass
class RetrainResult:
    """The finished run record and the exit code it maps to."""

    run: dict[str, Any]
    exit_code: int


def _quiet(_: str) -> None:
    return None


class _Run:
    """The state of one run while its steps execute."""

    def __init__(
        self, request: RetrainRequest, registry: Registry, store: ArtifactStore, notify: Notify
    ) -> None:
        self.request = request
        self.registry = registry
        self.store = store
        self.notify = notify
        self.recorder = RunRecorder(
            registry, request.model, request.inputs(), persist=not request.dry_run
        )
        self.lock: RunLock | None = None
        self.champion_alias: Alias | None = None
        self.champion: Version | None = None
        self.catalog = load_catalog(request.specs)
        self.prepared: Any | None = None  # control.scale.prepare.Prepared (Ray executor)

    @property
    def run(self) -> dict[str, Any]:
        return self.recorder.run

    def finish(
        self, status: str, action: str, reason: str, exit_code: int, **extra: Any
    ) -> RetrainResult:
        decision = {"action": action, "reason": reason, **extra}
        self.recorder.finish(status, decision)
        return RetrainResult(self.run, exit_code)

    def check_lock(self) -> None:
        if self.lock is not None:
            self.lock.check()

    # --- steps ------------------------------------------------------------------------------

    def read_champion(self) -> None:
        """The alias as it stands at the start: its generation is the CAS expectation."""
        req = self.request
        self.champion_alias = self.registry.get_alias(req.model, req.alias)
        if self.champion_alias is not None:
            self.champion = self.registry.get_version(req.model, self.champion_alias.version)
        self.run["inputs"]["champion"] = {
            "version": self.champion.version if self.champion else None,
            "generation": self.champion_alias.generation if self.champion_alias else 0,
        }

    def select_step(self) -> Selection:
        req = self.request
        with self.recorder.step("select") as detail:
            partitions = data.list_partitions(req.data_root)
            selection = select(
                partitions,
                window_days=req.window_days,
                holdout_days=req.holdout_days,
                day=req.day,
                allow_gaps=req.allow_gaps,
            )
            described = selection.describe()
            self.run["inputs"]["selection"] = described
            train, holdout = described["train"], described["holdout"]
            detail["summary"] = (
                f"train {train['start']}..{train['end']} ({len(selection.train)} days), "
                f"holdout {holdout['start']}..{holdout['end']}"
            )
            self.notify(f"select: {detail['summary']}")
        return selection

    def params_and_key(self, selection: Selection) -> tuple[str, dict[str, Any], str]:
        req = self.request
        spec = trainer.spec_for(req.model, self.catalog)
        recorded = self.champion.manifest.params if self.champion else None
        recorded_algo = self.champion.manifest.algorithm if self.champion else None
        saved = saved_for(self.registry, req.model, req.params_source)
        algo = trainer.algorithm_for(
            req.model, recorded_algo or (saved or {}).get("algorithm"), req.algo, self.catalog
        )
        tuned = saved_params(saved, algo)
        params = trainer.params_for(algo, recorded, tuned | req.overrides, recorded_algo)
        # A warm start trains another model from the same window: it is part of the key (and
        # absent from cold starts' keys, which stay what they were).
        parent = self.warm_parent()
        key = idempotency_key(
            req.model,
            spec.fingerprint,
            selection.describe()["partitions"],
            {"algo": algo, **params, **({"warm_start": parent} if parent else {})},
        )
        self.run["inputs"]["algo"] = algo
        self.run["inputs"]["params"] = params
        self.run["inputs"]["params_from_saved"] = sorted(set(tuned) - set(req.overrides))
        self.run["key"] = key
        self.recorder.save()
        return algo, params, key

    def warm_parent(self) -> str | None:
        """The version a warm start starts from: the alias's, if asked and there is one."""
        if not self.request.warm_start or self.champion is None:
            return None
        return self.champion.version

    def already_done(self, key: str) -> Version | None:
        """The version an earlier run registered for this key, if any."""
        return self.registry.find_version(self.request.model, key)

    def validate_step(self, selection: Selection) -> data.Tables:
        req = self.request
        with self.recorder.step("validate") as detail:
            profile = self.champion.manifest.profile if self.champion else {}
            ray = running_ray(req.executor)
            if ray is None:
                tables = data.read_selection(selection, req.model, self.notify, self.catalog)
                day_stats = tables.day_stats

                def psi() -> Any:
                    return data.psi_against(profile, tables.holdout, req.model, self.catalog)
            else:
                # The window is read once, by the preparation tasks; validation runs on the
                # per-file counts and profiles they return (no process holds the window).
                day_stats, holdout_parts = self.prepare_step(selection, ray)
                detail["prepared"] = self.prepared_summary()

                def psi() -> Any:
                    return data.psi_from_parts(profile, holdout_parts)

            label = self.catalog.target(req.model).label
            report = validate(
                day_stats,
                [p.rows for p in selection.history],
                label,
                req.policy,
                baseline_missing=data.baseline_missing(profile),
                psi=psi if profile else None,
            )
            detail["validation"] = report.to_json()
            detail["summary"] = report.summary()
            self.notify(f"validate: {report.summary()}")
            if report.failures:
                raise ValidationStoppedError(report)
        if ray is not None:
            tables = data.read_holdout(selection, req.model, self.notify, self.catalog)
        return tables

    def prepare_step(self, selection: Selection, ray: Any) -> tuple[list[Any], list[Any]]:
        """Ray: prepare the training days into shards and profile the holdout days, in
        tasks; the per-day statistics (training days, then holdout days) and the holdout
        files' parts."""
        from control.scale.prepare import prepare, profile_files  # noqa: PLC0415

        req = self.request
        self.prepared = prepare(
            [p.path for p in selection.train],
            req.model,
            store=self.store,
            specs=req.specs,
            ray=ray,
            run_id=self.recorder.run_id,
            notify=self.notify,
        )
        holdout_parts = profile_files(
            [p.path for p in selection.holdout],
            req.model,
            store=self.store,
            specs=req.specs,
            ray=ray,
        )
        stats = data.stats_from_parts(selection, self.prepared.parts + holdout_parts)
        return stats, holdout_parts

    def prepared_summary(self) -> dict[str, Any] | None:
        if self.prepared is None:
            return None
        return {
            "shards": len(self.prepared.index.shards),
            "rows": self.prepared.rows,
            "wall_seconds": round(self.prepared.wall_seconds, 3),
            "cpu_seconds": round(self.prepared.cpu_seconds, 3),
        }

    def train_step(
        self, tables: data.Tables, algo: str, params: dict[str, Any], selection: Selection
    ) -> TrainedModel:
        with self.recorder.step("train") as detail:
            self.check_lock()
            shown = " ".join(f"{k}={v}" for k, v in sorted(params.items()))
            self.notify(f"train: {self.request.model} ({algo}) on the window, {shown}")
            req = self.request
            if req.warm_start and self.champion is None:
                self.notify(f"train: no {req.alias} version to warm-start from; a cold start")
            with tempfile.TemporaryDirectory(prefix="bidscore-warm-") as workdir:
                init: rust_core.Model | None = None
                parent = self.warm_parent()
                if parent is not None:
                    init, _ = load_parent(
                        self.registry,
                        self.store,
                        req.model,
                        parent,
                        Path(workdir),
                        catalog=self.catalog,
                    )
                    self.notify(f"train: warm start from {req.alias} version {parent}")
                source = "saved" if self.run["inputs"].get("params_from_saved") else "default"
                if self.prepared is not None:
                    trained = trainer.train_distributed(
                        req.model,
                        self.prepared,
                        store=self.store,
                        memory_budget=req.memory_budget,
                        on_disk=req.on_disk,
                        algo=algo,
                        params=params,
                        threads=req.threads,
                        catalog=self.catalog,
                        params_source=source,
                        init=init,
                        parent_version=parent,
                    )
                    detail["prepared"] = trained.data.get("prepared")
                else:
                    trained = trainer.train(
                        req.model,
                        tables,
                        algo=algo,
                        params=params,
                        paths=[p.path for p in selection.train],
                        threads=req.threads,
                        catalog=self.catalog,
                        params_source=source,
                        on_disk=req.on_disk,
                        memory_budget=req.memory_budget,
                        init=init,
                        parent_version=parent,
                        store=self.store,
                        specs=req.specs,
                        run_id=self.recorder.run_id,
                        notify=self.notify,
                    )
            metrics = trained.metrics
            best = trained.model.best_epoch
            detail["summary"] = (
                f"{trained.data['train_rows']} rows"
                + (f", best epoch {best}" if best is not None else "")
                + f", validation logloss {metrics.logloss:.5f} auc {metrics.auc:.4f}"
            )
            detail["metrics"] = metrics.to_dict()
            detail["prepared"] = trained.data.get("prepared")
            if req.warm_start:
                detail["parent_version"] = parent  # None: no alias version, a cold start
        return trained

    def evaluate_step(self, tables: data.Tables, trained: TrainedModel) -> dict[str, Any]:
        with self.recorder.step("evaluate") as detail:
            comparison = compare.compare_on_holdout(
                self.request.model,
                tables,
                trained.model,
                self.champion,
                self.store,
                catalog=self.catalog,
            )
            self.run["comparison"] = comparison
            detail["summary"] = compare.summary(comparison)
            self.notify(f"evaluate: {detail['summary']}")
        return comparison

    def register_step(
        self, key: str, trained: TrainedModel, selection: Selection, comparison: dict[str, Any]
    ) -> Version:
        with self.recorder.step("register") as detail:
            self.check_lock()
            version = trainer.register(
                self.registry,
                self.store,
                trained,
                key=key,
                extra={
                    "comparison": comparison,
                    "retrain": {"run_id": self.recorder.run_id, **selection.describe()},
                },
            )
            self.run["version"] = version.version
            detail["summary"] = f"version {version.version} ({version.artifact_uri})"
            self.notify(f"register: {detail['summary']}")
        return version

    def promote_step(self, version: Version, comparison: dict[str, Any]) -> RetrainResult:
        req = self.request
        held = compare.gate_failures(comparison)
        if not req.auto_promote:
            self.recorder.skip("promote", "--no-auto-promote")
            reason = f"registered version {version.version}; not promoted (--no-auto-promote)"
            return self.finish(
                "succeeded", "registered", reason, EXIT_OK, version=version.version, gates=held
            )
        if held:
            self.recorder.skip("promote", "; ".join(held))
            reason = f"registered version {version.version}; held by gate: {'; '.join(held)}"
            return self.finish(
                "succeeded", "held", reason, EXIT_OK, version=version.version, gates=held
            )
        expected = self.champion_alias.generation if self.champion_alias else 0
        try:
            with self.recorder.step("promote") as detail:
                self.check_lock()
                # The metric gates were decided above on the shared holdout, which is a
                # fairer test than the two versions' own validation sets: `check_gates=False`
                # skips only promote()'s gates, never its integrity checks, and the CAS
                # expects the generation this run read before it started.
                moved = promote(
                    self.registry,
                    self.store,
                    req.model,
                    version.version,
                    alias=req.alias,
                    actor=f"{req.actor} ({self.recorder.run_id})",
                    reason=compare.summary(comparison),
                    check_gates=False,
                    # A scheduled run names its alias in its configuration, reviewed once.
                    create_alias=True,
                    expected_generation=expected,
                    catalog=self.catalog,
                )
                detail["summary"] = (
                    f"{req.alias} -> {moved.alias.version} (generation {moved.alias.generation})"
                )
        except ConflictError:
            reason = (
                f"registered version {version.version}; not promoted: {req.alias} moved during "
                "the run (a manual promotion?), and a retrain never overwrites it"
            )
            return self.finish(
                "succeeded",
                "held",
                reason,
                EXIT_OK,
                version=version.version,
                gates=["alias moved during the run"],
            )
        reason = f"promoted version {version.version} to {req.alias}"
        return self.finish(
            "succeeded", "promoted", reason, EXIT_OK, version=version.version, gates=[]
        )

    # --- the whole run ----------------------------------------------------------------------

    def execute(self) -> RetrainResult:
        self.read_champion()
        selection = self.select_step()
        algo, params, key = self.params_and_key(selection)
        existing = self.already_done(key)
        if existing is not None:
            return self.resume_or_noop(existing)
        try:
            return self.validated_run(selection, algo, params, key)
        finally:
            if self.prepared is not None:
                from control.scale.prepare import cleanup  # noqa: PLC0415

                cleanup(self.prepared, self.store)

    def validated_run(
        self, selection: Selection, algo: str, params: dict[str, Any], key: str
    ) -> RetrainResult:
        req = self.request
        try:
            tables = self.validate_step(selection)
        except ValidationStoppedError as exc:
            for name in ("train", "evaluate", "register", "promote"):
                self.recorder.skip(name, "validation failed")
            failed = exc.report.to_json()["failed"]
            return self.finish("stopped", "stopped", str(exc), EXIT_STOPPED, failed_checks=failed)
        if req.dry_run:
            shown = " ".join(f"{k}={v}" for k, v in sorted(params.items()))
            reason = f"dry run (nothing recorded): would train {req.model} ({algo}) with {shown}"
            return self.finish("succeeded", "dry-run", reason, EXIT_OK)
        trained = self.train_step(tables, algo, params, selection)
        comparison = self.evaluate_step(tables, trained)
        version = self.register_step(key, trained, selection, comparison)
        return self.promote_step(version, comparison)

    def resume_or_noop(self, existing: Version) -> RetrainResult:
        """A version for this key exists: a no-op, or the end of a run that died after
        registering it."""
        key = self.run["key"]
        # A run that promoted or was held by a gate settled this window. One that only
        # registered (--no-auto-promote) leaves the promotion to a later auto-promoting run.
        final = (
            ("promoted", "held")
            if self.request.auto_promote
            else ("promoted", "held", "registered")
        )
        decided = [
            r
            for r in self.registry.list_runs(self.request.model)
            if r.get("key") == key
            and r.get("status") == "succeeded"
            and (r.get("decision") or {}).get("action") in final
        ]
        self.run["version"] = existing.version
        for name in ("validate", "train", "evaluate", "register"):
            self.recorder.skip(
                name, f"version {existing.version} already registered for this window"
            )
        live = self.champion is not None and self.champion.version == existing.version
        if decided or live or self.request.dry_run:
            first = decided[0]["run_id"] if decided else "an earlier run"
            reason = (
                f"nothing to do: version {existing.version} was already registered for this "
                f"window and params by {first}"
            )
            return self.finish("noop", "noop", reason, EXIT_OK, version=existing.version)
        # An earlier run registered but died (or was told not to promote): decide now, on
        # the comparison recorded with the version.
        comparison = existing.manifest.comparison or {}
        self.run["comparison"] = comparison
        self.notify(f"resume: version {existing.version} is registered, not yet decided")
        return self.promote_step(existing, comparison)


def run_retrain(
    request: RetrainRequest,
    registry: Registry,
    store: ArtifactStore,
    notify: Notify = _quiet,
) -> RetrainResult:
    """Run one retraining; AlreadyRunningError if another run holds the model's lock.

    Errors after the run started (bad data, registry outage) are recorded as a failed run
    and re-raised for the CLI to report in one line.
    """
    trainer.spec_for(
        request.model, load_catalog(request.specs)
    )  # an unknown model is a one-line error, not a failed run
    state = _Run(request, registry, store, notify)
    if request.dry_run:
        return state.execute()
    lock = RunLock(registry, request.model, state.recorder.run["owner"], request.lock_ttl)
    with lock:
        state.lock = lock
        state.recorder.save()
        for run_id in mark_abandoned(registry, request.model, state.recorder.run_id):
            notify(f"marked run {run_id} abandoned (it died while holding the lock)")
        try:
            return state.execute()
        except Exception as exc:
            state.recorder.finish("failed", {"action": "failed", "reason": str(exc)}, str(exc))
            raise
