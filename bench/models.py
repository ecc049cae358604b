"""Models for the benchmarks: trained on generated logs and published to a private registry.

Each model gets `versions` versions (different seeds), all registered; `production` points at
version 1. Training goes through the same path as `control train` (features.tokenize, then
rust_core), with few epochs: the benchmarks measure scoring cost, not model quality.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import rust_core
from bidscore.manifest import Manifest
from bidscore.registry import open_registry
from bidscore.store import open_store
from control import datagen
from features.spec import ModelSpec
from features.tokenize import tokenize_table


def registry_url(home: Path) -> str:
    return f"sqlite:///{home / 'registry.db'}"


def store_url(home: Path) -> str:
    return f"file://{home / 'artifacts'}"


def train(spec: ModelSpec, table: pa.Table, *, seed: int, epochs: int) -> rust_core.Model:
    label = "conversion" if spec.name.startswith("cvr") else "click"
    if label == "conversion":  # CVR learns from clicked rows, as in features.bid.TARGETS
        table = table.filter(pc.equal(table["click"], 1))
    data = tokenize_table(table, spec, label=label)
    if spec.algorithm == "ffm":
        return rust_core.train_ffm(
            data, epochs=epochs, seed=seed, bits=spec.bits, fingerprint=spec.fingerprint
        )
    return rust_core.train_lr(
        data, epochs=epochs, seed=seed, bits=spec.bits, fingerprint=spec.fingerprint
    )


def publish(
    home: Path,
    specs: dict[str, ModelSpec],
    *,
    versions: int = 2,
    rows: int = 20_000,
    epochs: int = 2,
) -> dict[str, list[str]]:
    """Train and register every spec in `home`; returns {model: [version, ...]}."""
    home.mkdir(parents=True, exist_ok=True)
    registry = open_registry(registry_url(home))
    store = open_store(store_url(home))
    table = datagen.generate(rows, seed=11)
    out: dict[str, list[str]] = {}
    for name, spec in specs.items():
        out[name] = []
        for n in range(1, versions + 1):
            model = train(spec, table, seed=n, epochs=epochs)
            path = home / f"{name}-{n}.model"
            model.save(str(path))
            uri = store.put(path, f"{name}/{n}.model")
            path.unlink()  # the store holds the copy the server fetches
            manifest = {
                "model": name,
                "algorithm": model.algorithm,
                "checksum": model.checksum,
                "fingerprint": model.fingerprint,
            }
            out[name].append(
                registry.register_version(name, Manifest.from_json(manifest), uri).version
            )
        registry.set_alias(
            name, "production", out[name][0], expected_generation=0, actor="bench", reason="bench"
        )
    return out
