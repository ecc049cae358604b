"""Poll the registry alias of every served model; load, verify, warm up and swap on a change.

Runs on its own thread so that downloads, checksum verification and warm-up never stall the
event loop. A model whose alias is not set yet is left out (logged once) and the others are
served; it joins the set as soon as its alias appears. Until every model that has an alias is
loaded, nothing is swapped in. Two kinds of failure are kept apart:
- an outage (registry or store unreachable, I/O error) keeps the current models and retries
  with exponential backoff;
- a refused artifact (format, checksum, fingerprint, warm-up) is logged and counted, the
  current models keep serving, and the refusal is remembered for that exact artifact only:
  (model, version, alias generation, manifest checksum, artifact URI). The same artifact is
  tried again after a growing delay (`refused_retry_seconds`, doubling, at most
  `REFUSED_RETRY_MAX`), because the bytes behind a URI can be repaired; any alias move (a
  rollback, a `promote --force` of the same version) is a fresh attempt at once.

Running experiments (`registry.running_experiments()`) are read in the same poll, with the same
outage handling (an unreachable registry keeps the last known experiments). The treatment of an
experiment on a served model is fetched, verified and warmed up like an alias target; the
control arm is the version the model's alias serves. A treatment that cannot be loaded leaves
the experiment degraded: every request goes to control, `bidscore_experiment_degraded` is 1 and
one ERROR line says why; it is tried again after `refused_retry_seconds`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from bidscore.experiments import Experiment
from bidscore.registry import Alias, NotFoundError, Registry, open_registry
from bidscore.store import ArtifactStore, open_store
from pyserver.artifacts import VerifiedFiles, fetch, prune
from pyserver.config import ServerConfig
from pyserver.errors import RefusedArtifact
from pyserver.experiments import ServedExperiment, describe, routes_of
from pyserver.feature_ranges import numeric_ranges
from pyserver.metrics import CACHE_CHANGED, MISSING_VERSION, OUTAGE, Metrics
from pyserver.modelset import LoadedModel, ModelSet, ModelSlot
from pyserver.serving_features import ServingFeatures

log = logging.getLogger(__name__)

# A refused artifact is retried at most this far apart: a repaired file is picked up within
# ten minutes, and a bad 400 MB file is not downloaded and hashed more often than that.
REFUSED_RETRY_MAX = 600.0


@dataclass
class _Refusal:
    """The last refused artifact of one model, and when to try it again."""

    version: str
    generation: int
    artifact: tuple[str, str]  # (manifest checksum, artifact URI); empty before the fetch
    reason: str
    attempts: int
    retry_at: float  # time.monotonic()

    def blocks(self, alias: Alias, now: float) -> bool:
        """Whether the alias still points at this refused artifact and it is not due yet."""
        same = (alias.version, alias.generation) == (self.version, self.generation)
        return same and now < self.retry_at


class Reloader:
    def __init__(
        self,
        config: ServerConfig,
        features: ServingFeatures,
        slot: ModelSlot,
        metrics: Metrics,
        on_swap: Callable[[ModelSet], None],
    ) -> None:
        self._config = config
        self._features = features
        self._slot = slot
        self._metrics = metrics
        self._on_swap = on_swap
        self._registry: Registry | None = None
        self._store: ArtifactStore | None = None
        # Verified models, possibly ahead of the slot while the first complete set assembles.
        self._loaded: dict[str, LoadedModel] = {}
        self._refused: dict[str, _Refusal] = {}
        self._aliases: dict[str, Alias] = {}
        # model -> (version, manifest checksum, artifact URI) of its last fetch.
        self._artifacts: dict[str, tuple[str, str, str]] = {}
        # Files verified by this worker: moving back to one of them re-hashes nothing.
        self._verified = VerifiedFiles()
        self._missing_alias_logged: set[str] = set()
        # model -> the running experiment served, with its treatment (or why it is degraded).
        self._experiments: dict[str, ServedExperiment] = {}
        # (experiment, generation, treatment) -> when to retry loading a refused treatment.
        self._treatment_retry: dict[tuple[str, int, str], float] = {}
        self._control_warned: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bidscore-reloader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self._config.poll_interval
        while not self._stop.is_set():
            try:
                self.poll_once()
                delay = self._config.poll_interval
            except Exception as exc:
                # An outage: keep serving what we have, retry later.
                delay = min(delay * 2, self._config.max_backoff)
                self._registry = self._store = None  # reconnect from scratch next time
                self._metrics.reload_failed("*", OUTAGE)
                log.warning("registry/store unavailable, retrying in %.1fs: %s", delay, exc)
            self._metrics.polls.inc()
            # Jitter keeps the workers of a fleet from polling in lockstep.
            self._stop.wait(delay * random.uniform(0.9, 1.1))

    def poll_once(self) -> bool:
        """One poll; True if a new model set was swapped in. Outages raise."""
        if self._registry is None:
            # Never create it: a registry file that vanished is an outage, not a new empty one.
            self._registry = open_registry(self._config.registry_url, create=False)
        registry = self._registry
        self._check_served_files()
        wanted = self._read_aliases(registry)
        running = self._read_experiments(registry)
        self._metrics.alias_targets(self._config.aliases, wanted)
        changed = self._to_load(wanted)
        newly_loaded: dict[str, LoadedModel] = {}
        for name in changed:
            try:
                newly_loaded[name] = self._load(registry, name, wanted[name])
            except RefusedArtifact as exc:
                self._refuse(name, wanted[name], exc)
        candidate = {**self._loaded, **newly_loaded}
        # Complete: every model with an alias is loaded (at least one). A model without an
        # alias does not hold the others back.
        complete = bool(wanted) and all(name in candidate for name in wanted)
        experiments = self._update_experiments(registry, running, candidate)
        experiments_moved = experiments != self._experiments
        current = self._slot.current
        if not complete or (current is not None and not newly_loaded and not experiments_moved):
            self._loaded = candidate
            for name in newly_loaded:
                self._forget_refusal(name)
            return False
        try:
            scorer = self._features.build_scorer(candidate, experiments)
            self._features.warm_up(scorer, [n for n in self._config.models if n in candidate])
        except Exception as exc:
            for name, loaded in newly_loaded.items():
                self._refuse(name, loaded.version, RefusedArtifact("warmup", f"warm-up: {exc}"))
            return False
        self._loaded = candidate
        for name in newly_loaded:
            self._forget_refusal(name)
        self._set_experiments(experiments)
        new_set = ModelSet(
            scorer=scorer,
            models=MappingProxyType(dict(candidate)),
            experiments=MappingProxyType(dict(experiments)),
            routes=routes_of(scorer, experiments, self._metrics),
        )
        old = self._slot.swap(new_set)
        self._metrics.reload_succeeded(
            new_set.versions,
            sorted(newly_loaded),
            alias=self._config.aliases,
            created={name: loaded.created_at for name, loaded in candidate.items()},
        )
        log.info(
            "serving %s (was %s)%s",
            new_set.versions,
            old.versions if old is not None else "nothing",
            f"; experiments: {describe(experiments)}" if experiments_moved else "",
        )
        self._on_swap(new_set)
        for name in newly_loaded:
            try:
                prune(self._config.cache_dir, name, Path(candidate[name].path))
            except OSError as exc:  # a full or read-only cache must not stop serving
                log.warning("could not prune the model cache: %s", exc)
        return True

    def _check_served_files(self) -> None:
        """Drop a loaded model whose cached file changed on disk, so this poll loads a fresh
        copy and swaps it in. A file changed in place is deleted (it is corrupt for every
        worker); one replaced by another file is simply verified again."""
        for name, loaded in list(self._loaded.items()):
            if self._changed_on_disk(name, Path(loaded.path), f"version {loaded.version}"):
                del self._loaded[name]
        for name, served in list(self._experiments.items()):
            # A treatment's file too: dropping the entry makes this poll load a fresh copy.
            treatment = served.treatment
            if treatment is not None and self._changed_on_disk(
                name,
                Path(treatment.path),
                f"treatment version {treatment.version} (experiment {served.experiment.name})",
            ):
                del self._experiments[name]

    def _changed_on_disk(self, name: str, path: Path, what: str) -> bool:
        """True (logged, counted, the file dropped from the cache) if the cached file of
        `name`'s `what` changed since it was verified: the caller forgets the entry."""
        change = self._verified.changed(path)
        if change is None:
            return False
        log.error(
            "cached file of %s %s changed on disk (%s): %s; loading a fresh copy",
            name,
            what,
            change,
            path,
        )
        self._metrics.reload_failed(name, CACHE_CHANGED)
        if self._verified.in_place(path):
            with contextlib.suppress(OSError):
                path.unlink()
        self._verified.forget(path)
        return True

    def _read_experiments(self, registry: Registry) -> dict[str, Experiment]:
        """model -> its running experiment, for the served models."""
        served = set(self._config.models)
        return {e.model: e for e in registry.running_experiments() if e.model in served}

    def _update_experiments(
        self,
        registry: Registry,
        running: dict[str, Experiment],
        loaded: dict[str, LoadedModel],
    ) -> dict[str, ServedExperiment]:
        """The experiments to serve: each running one on a loaded model, with its treatment
        loaded (or degraded). Outages raise (the caller keeps the last known state)."""
        out: dict[str, ServedExperiment] = {}
        now = time.monotonic()
        for model, experiment in running.items():
            control = loaded.get(model)
            if control is None:
                continue  # the model itself is not served yet
            self._check_control(experiment, control)
            known = self._experiments.get(model)
            key = (experiment.name, experiment.generation, experiment.treatment)
            if known is not None and known.key == key and known.experiment == experiment:
                due = self._treatment_retry.get(key)
                if known.treatment is not None or due is None or now < due:
                    out[model] = known
                    continue
            out[model] = self._load_treatment(registry, experiment, known)
        return out

    def _load_treatment(
        self, registry: Registry, experiment: Experiment, known: ServedExperiment | None
    ) -> ServedExperiment:
        model, version = experiment.model, experiment.treatment
        key = (experiment.name, experiment.generation, version)
        try:
            try:
                entry = registry.get_version(model, version)
            except NotFoundError as exc:
                raise RefusedArtifact(
                    MISSING_VERSION, f"treatment version {version} is not registered ({exc})"
                ) from exc
            if self._store is None:
                self._store = open_store(self._config.store_url)
            path = fetch(self._store, entry, self._config.cache_dir)
            treatment = self._verified.load(entry, path, self._features.fingerprints[model])
            try:
                self._features.warm_up(self._features.build_scorer({model: treatment}), [model])
            except Exception as exc:
                raise RefusedArtifact("warmup", f"warm-up: {exc}") from exc
        except RefusedArtifact as exc:
            self._treatment_retry[key] = time.monotonic() + self._config.refused_retry_seconds
            if known is None or known.key != key or known.degraded != exc.reason:
                # One line per experiment and reason: retries are silent.
                log.error(
                    "experiment %s on %s is degraded: cannot load treatment version %s (%s):"
                    " %s; every request is answered by control (version %s); retrying every"
                    " %.0fs",
                    experiment.name,
                    model,
                    version,
                    exc.reason,
                    exc,
                    experiment.control,
                    self._config.refused_retry_seconds,
                )
            return ServedExperiment(experiment, None, exc.reason)
        self._treatment_retry.pop(key, None)
        return ServedExperiment(experiment, treatment)

    def _check_control(self, experiment: Experiment, control: LoadedModel) -> None:
        if control.version == experiment.control:
            return
        seen = (experiment.name, experiment.generation)
        if seen not in self._control_warned:
            self._control_warned.add(seen)
            log.warning(
                "experiment %s on %s names control version %s, but the %r alias serves version"
                " %s: the control arm is answered by version %s (responses and the log name it)",
                experiment.name,
                experiment.model,
                experiment.control,
                self._config.alias_of(experiment.model),
                control.version,
                control.version,
            )

    def _set_experiments(self, experiments: dict[str, ServedExperiment]) -> None:
        """Record the experiments just swapped in: gauges and log lines for what moved."""
        gauge = self._metrics.experiment_degraded
        for model, old in self._experiments.items():
            new = experiments.get(model)
            if new is None or new.experiment.name != old.experiment.name:
                gauge.labels(model=model, experiment=old.experiment.name).set(0)
                log.info(
                    "experiment %s on %s is no longer running: every request goes to control",
                    old.experiment.name,
                    model,
                )
        for model, new in experiments.items():
            gauge.labels(model=model, experiment=new.experiment.name).set(
                1 if new.treatment is None else 0
            )
        self._experiments = dict(experiments)

    def _read_aliases(self, registry: Registry) -> dict[str, str]:
        """model -> the version its alias points at (models without the alias left out)."""
        wanted: dict[str, str] = {}
        for name in self._config.models:
            followed = self._config.alias_of(name)
            alias = registry.get_alias(name, followed)
            if alias is None:
                if name not in self._missing_alias_logged:
                    log.warning(
                        "model %s has no %r alias yet: serving the others without it; it is"
                        " loaded as soon as a version is promoted to %r",
                        name,
                        followed,
                        followed,
                    )
                    self._missing_alias_logged.add(name)
                continue
            wanted[name] = alias.version
            self._aliases[name] = alias
        return wanted

    def _to_load(self, wanted: dict[str, str]) -> list[str]:
        """The models whose alias points elsewhere than what is loaded, unless that is an
        artifact refused recently (not due for a retry) and the alias has not moved since."""
        now = time.monotonic()
        changed = []
        for name, version in wanted.items():
            if name in self._loaded and self._loaded[name].version == version:
                self._forget_refusal(name)  # the alias went back to what is served
                continue
            refusal = self._refused.get(name)
            if refusal is None or not refusal.blocks(self._aliases[name], now):
                changed.append(name)
        return changed

    def _load(self, registry: Registry, name: str, version: str) -> LoadedModel:
        if self._store is None:
            self._store = open_store(self._config.store_url)
        try:
            entry = registry.get_version(name, version)
        except NotFoundError as exc:
            # The registry answered: this is a dangling alias, not an outage. Backing off
            # exponentially and calling it "unavailable" sent operators after the wrong cause.
            raise RefusedArtifact(
                MISSING_VERSION,
                f"alias {self._config.alias_of(name)!r} of {name} points at version {version}, "
                f"which is not registered ({exc})",
            ) from exc
        self._artifacts[name] = (version, entry.manifest.checksum, entry.artifact_uri)
        path = fetch(self._store, entry, self._config.cache_dir)
        loaded = self._verified.load(entry, path, self._features.fingerprints[name])
        return replace(loaded, ranges=numeric_ranges(entry.manifest.profile))

    def _refuse(self, name: str, version: str, exc: RefusedArtifact) -> None:
        alias = self._aliases.get(name)
        generation = alias.generation if alias is not None else 0
        fetched = self._artifacts.get(name)
        artifact = fetched[1:] if fetched is not None and fetched[0] == version else ("", "")
        previous = self._refused.get(name)
        same = previous is not None and (
            (previous.version, previous.generation, previous.artifact)
            == (version, generation, artifact)
        )
        attempts = previous.attempts + 1 if same and previous is not None else 1
        delay = min(self._config.refused_retry_seconds * 2 ** (attempts - 1), REFUSED_RETRY_MAX)
        self._refused[name] = _Refusal(
            version, generation, artifact, exc.reason, attempts, time.monotonic() + delay
        )
        self._metrics.reload_failed(name, exc.reason)
        if previous is not None and previous.version != version:
            self._metrics.refused_cleared(name, previous.version)
        self._metrics.refused_now(name, version, exc.reason)
        # The first refusal of an artifact is an ERROR; its retries are only WARNINGs.
        level = logging.ERROR if attempts == 1 else logging.WARNING
        log.log(
            level,
            "refused %s version %s (%s): %s; keeping the current model; "
            "attempt %d, trying this artifact again in %.0fs or when the alias moves",
            name,
            version,
            exc.reason,
            exc,
            attempts,
            delay,
        )

    def _forget_refusal(self, name: str) -> None:
        refusal = self._refused.pop(name, None)
        if refusal is not None:
            self._metrics.refused_cleared(name, refusal.version)
