"""Poll the registry alias of every served model; load, verify, warm up and swap on a change.

Runs on its own thread so that downloads, checksum verification and warm-up never stall the
event loop. A model whose alias is not set yet is left out (logged once) and the others are
served; it joins the set as soon as its alias appears. Until every model that has an alias is
loaded, nothing is swapped in. Two kinds of failure are kept apart:
- an outage (registry or store unreachable, I/O error) keeps the current models and retries
  with exponential backoff;
- a refused artifact (format, checksum, fingerprint, warm-up) is logged and counted once, the
  version is remembered and skipped, and the current models keep serving.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from bidscore.registry import Registry, open_registry
from bidscore.store import ArtifactStore, open_store
from pyserver.artifacts import VerifiedFiles, fetch, prune
from pyserver.config import ServerConfig
from pyserver.errors import RefusedArtifact
from pyserver.metrics import OUTAGE, Metrics
from pyserver.modelset import LoadedModel, ModelSet, ModelSlot
from pyserver.serving_features import ServingFeatures

log = logging.getLogger(__name__)


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
        self._refused: set[tuple[str, str]] = set()
        # Files verified by this worker: moving back to one of them re-hashes nothing.
        self._verified = VerifiedFiles()
        self._missing_alias_logged: set[str] = set()
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
            self._registry = open_registry(self._config.registry_url)
        registry = self._registry
        wanted: dict[str, str] = {}
        for name in self._config.models:
            alias = registry.get_alias(name, self._config.alias)
            if alias is None:
                if name not in self._missing_alias_logged:
                    log.warning(
                        "model %s has no %r alias yet: serving the others without it; it is"
                        " loaded as soon as a version is promoted to %r",
                        name,
                        self._config.alias,
                        self._config.alias,
                    )
                    self._missing_alias_logged.add(name)
                continue
            wanted[name] = alias.version
        changed = [
            name
            for name, version in wanted.items()
            if (name not in self._loaded or self._loaded[name].version != version)
            and (name, version) not in self._refused
        ]
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
        current = self._slot.current
        if not complete or (current is not None and not newly_loaded):
            self._loaded = candidate
            return False
        try:
            scorer = self._features.build_scorer(candidate)
            self._features.warm_up(scorer, [n for n in self._config.models if n in candidate])
        except Exception as exc:
            for name, loaded in newly_loaded.items():
                self._refuse(name, loaded.version, RefusedArtifact("warmup", f"warm-up: {exc}"))
            return False
        self._loaded = candidate
        new_set = ModelSet(scorer=scorer, models=MappingProxyType(dict(candidate)))
        old = self._slot.swap(new_set)
        self._metrics.reload_succeeded(new_set.versions, sorted(newly_loaded))
        log.info(
            "serving %s (was %s)",
            new_set.versions,
            old.versions if old is not None else "nothing",
        )
        self._on_swap(new_set)
        for name in newly_loaded:
            try:
                prune(self._config.cache_dir, name, Path(candidate[name].path))
            except OSError as exc:  # a full or read-only cache must not stop serving
                log.warning("could not prune the model cache: %s", exc)
        return True

    def _load(self, registry: Registry, name: str, version: str) -> LoadedModel:
        if self._store is None:
            self._store = open_store(self._config.store_url)
        entry = registry.get_version(name, version)
        path = fetch(self._store, entry, self._config.cache_dir)
        return self._verified.load(entry, path, self._features.fingerprints[name])

    def _refuse(self, name: str, version: str, exc: RefusedArtifact) -> None:
        self._refused.add((name, version))
        self._metrics.reload_failed(name, exc.reason)
        log.error(
            "refused %s version %s (%s): %s; keeping the current model",
            name,
            version,
            exc.reason,
            exc,
        )
