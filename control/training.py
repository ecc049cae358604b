"""Train a model version: read logs -> split -> tokenise -> train (rust_core) -> evaluate ->
profile -> save model + manifest to the store -> register.

The library is in three steps so that `control train` and `control retrain` share them:

- `load_data(...)` reads logs through `features.readers`, keeps the model's target rows (cvr:
  clicked rows only) and splits off validation rows (`--valid PATH` or a seeded random
  `--valid-fraction`);
- `train_tables(...)` trains and evaluates on already-read tables and returns a `TrainedModel`
  (model, metrics, profile, parameters) without touching the registry;
- `publish(...)` saves the model file and its manifest to the store and, only when both
  uploads are complete, registers the version (idempotently, by key).

Downsampling: rows of data written with negatives kept at rate w (Parquet metadata
`bidscore.downsample_rate`), and negatives dropped here with `--downsample-negatives r`, train
unweighted and the model corrects its scores for the overall rate w * r (`q = p / (p + (1-p) /
w)`), so it predicts the original traffic's rates. Validation rows are never downsampled here;
their `weight` column (1/w for kept negatives) weights the metrics. Data mixing several rates
(no single recorded rate) trains with its `weight` column instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

import rust_core
from bidscore.manifest import (
    MANIFEST_SUFFIX,
    Manifest,
    code_version,
    file_sha256,
    write_manifest,
)
from bidscore.registry import Registry, Version
from bidscore.registry.base import utc_now
from bidscore.store import ArtifactStore
from control.errors import TrainingInputError, WarmStartError
from control.metrics import Metrics, evaluate
from control.prepared import choose_storage, shard_rows, sharded, write_table_shards
from control.profile import profile_table, spec_features
from control.warm import check_compatible
from features.catalog import Catalog, CatalogError, load
from features.readers import downsample_rate, read_logs
from features.readers.cast import WEIGHT_COLUMN
from features.spec import ModelSpec, Target
from features.tokenize import tokenize_table

# The hyper-parameters `control train` exposes, with Rust's defaults (FfmParams::default(),
# LrParams::default(): LIBFFM's for FFM, FTRL-proximal's for LR), the one source of them.
# Run settings (threads, seed, downsampling) are options of their own, not hyper-parameters.
_RUN_SETTINGS = {"threads", "seed", "downsample_rate", "shuffle"}
FFM_DEFAULTS: dict[str, Any] = {
    k: v for k, v in rust_core.ffm_defaults().items() if k not in _RUN_SETTINGS
}
LR_DEFAULTS: dict[str, Any] = {
    k: v for k, v in rust_core.lr_defaults().items() if k not in _RUN_SETTINGS
}
DEFAULTS = {"ffm": FFM_DEFAULTS, "lr": LR_DEFAULTS}


class Observer(Protocol):
    """What long work reports, for progress bars (every method may be a no-op)."""

    def stage(self, name: str) -> None: ...

    def epoch(
        self, epoch: int, epochs: int, train_logloss: float, valid_logloss: float | None
    ) -> None: ...

    def transfer(self, name: str, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...


class QuietObserver:
    """An observer that reports nothing (library default)."""

    def stage(self, name: str) -> None:
        pass

    def epoch(
        self, epoch: int, epochs: int, train_logloss: float, valid_logloss: float | None
    ) -> None:
        pass

    def transfer(self, name: str, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass


def model_spec(model: str, catalog: Catalog | None = None) -> ModelSpec:
    """The feature spec of `model` in the catalogue (default: `features.catalog.load()`), or a
    one-line error naming the known models."""
    try:
        return (catalog or load()).spec(model)
    except CatalogError as exc:
        raise TrainingInputError(str(exc)) from None


def model_target(model: str, catalog: Catalog | None = None) -> Target:
    """What `model` learns (its label, and the rows it learns from)."""
    try:
        return (catalog or load()).target(model)
    except CatalogError as exc:
        raise TrainingInputError(str(exc)) from None


def hyper_parameters(algo: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The algorithm's defaults with `overrides` (None values ignored); unknown names and
    out-of-range values are one-line errors."""
    if algo not in DEFAULTS:
        raise TrainingInputError(f"unknown algorithm {algo!r} (use ffm or lr)")
    params = dict(DEFAULTS[algo])
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in params:
            raise TrainingInputError(
                f"{algo} has no hyper-parameter {name!r} (it has {', '.join(sorted(params))})"
            )
        params[name] = value
    if int(params["epochs"]) < 1:
        raise TrainingInputError(f"epochs must be >= 1, got {params['epochs']}")
    for name in ("eta", "alpha", "beta"):
        if name in params and not float(params[name]) > 0:
            raise TrainingInputError(f"{name} must be > 0, got {params[name]}")
    for name in ("l1", "l2"):
        if name in params and not float(params[name]) >= 0:
            raise TrainingInputError(f"{name} must be >= 0, got {params[name]}")
    if "k" in params and not 1 <= int(params["k"]) <= 256:
        raise TrainingInputError(f"k must be in 1..256, got {params['k']}")
    return params


@dataclass
class Data:
    """Training and validation rows of one model, and where they came from."""

    train: pa.Table
    valid: pa.Table
    paths: list[str]
    valid_paths: list[str] = field(default_factory=list)
    valid_fraction: float | None = None


def _target_rows(table: pa.Table, target: Target, where: str) -> pa.Table:
    if target.where is not None:
        table = table.filter(pc.equal(table[target.where], 1))
    if table.num_rows == 0:
        raise TrainingInputError(f"{where}: no rows to train {target.label} on")
    return table


def check_labels(table: pa.Table, label: str, where: str) -> None:
    """Both label values must occur, or no model can be learnt (and AUC is undefined)."""
    positives = int(pc.sum(table[label]).as_py() or 0)
    if positives in (0, table.num_rows):
        raise TrainingInputError(
            f"{where}: {label} is {int(positives > 0)} in all {table.num_rows} rows;"
            " a model needs both label values"
        )


def load_data(
    model: str,
    paths: Sequence[str | Path],
    *,
    valid_paths: Sequence[str | Path] = (),
    valid_fraction: float = 0.1,
    seed: int = 0,
    catalog: Catalog | None = None,
) -> Data:
    """Read logs for `model` and split off validation rows (see the module docstring)."""
    target = model_target(model, catalog)
    labels = [target.label] + ([target.where] if target.where else [])
    names = [str(p) for p in paths]
    table = _target_rows(read_logs(names, required_labels=labels), target, ", ".join(names))
    check_labels(table, target.label, "training data")
    if valid_paths:
        valid_names = [str(p) for p in valid_paths]
        valid = _target_rows(
            read_logs(valid_names, required_labels=labels), target, ", ".join(valid_names)
        )
        return Data(table, valid, names, valid_names)
    if not 0 < valid_fraction < 1:
        raise TrainingInputError(f"--valid-fraction must be in (0, 1), got {valid_fraction}")
    held_out = np.random.default_rng(seed).random(table.num_rows) < valid_fraction
    train, valid = table.filter(pa.array(~held_out)), table.filter(pa.array(held_out))
    if train.num_rows == 0 or valid.num_rows == 0:
        raise TrainingInputError(
            f"{table.num_rows} rows are too few to hold out {valid_fraction:.0%} for validation"
        )
    # Filtering keeps the schema metadata, including the downsampling rate.
    return Data(train, valid, names, valid_fraction=valid_fraction)


def downsample_negatives(table: pa.Table, label: str, rate: float, seed: int) -> pa.Table:
    """Keep every positive and each negative with probability `rate` (seeded)."""
    if not 0 < rate <= 1:
        raise TrainingInputError(f"--downsample-negatives must be in (0, 1], got {rate}")
    if rate == 1:
        return table
    keep = (table[label].to_numpy() == 1) | (
        np.random.default_rng(seed + 1).random(table.num_rows) < rate
    )
    return table.filter(pa.array(keep))


@dataclass
class TrainedModel:
    """A trained, evaluated, profiled model that is not registered yet."""

    name: str
    spec: ModelSpec
    model: rust_core.Model
    metrics: Metrics
    profile: dict[str, Any]
    params: dict[str, Any]
    data: dict[str, Any]
    parent_version: str | None = None

    def manifest(self) -> Manifest:
        """The manifest without the fields only publishing knows (sha256, URIs, version)."""
        return Manifest(
            model=self.name,
            algorithm=self.model.algorithm,
            params=self.params,
            fingerprint=self.model.fingerprint,
            checksum=self.model.checksum,
            spec=json.loads(self.spec.plan_json()),
            metrics=self.metrics.to_dict(),
            profile=self.profile,
            data=self.data,
            code_version=code_version(),
            created_at=utc_now(),
            parent_version=self.parent_version,
        )


def data_window(table: pa.Table) -> dict[str, str] | None:
    """The first and last day (UTC) of the rows' `ts`, or None without timestamps."""
    if "ts" not in table.column_names or table["ts"].null_count == table.num_rows:
        return None
    bounds = pc.min_max(table["ts"]).as_py()

    def day(ts: int) -> str:
        return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()

    return {"start": day(bounds["min"]), "end": day(bounds["max"])}


def _weights(table: pa.Table) -> npt.NDArray[np.float64] | None:
    if WEIGHT_COLUMN not in table.column_names:
        return None
    return np.asarray(table[WEIGHT_COLUMN].to_numpy(), dtype=np.float64)


def fit(
    spec: ModelSpec,
    train_set: rust_core.Dataset | rust_core.ShardedDataset,
    valid_set: rust_core.Dataset,
    *,
    algo: str,
    hyper: dict[str, Any],
    valid_labels: npt.NDArray[Any],
    valid_weights: npt.NDArray[np.float64] | None,
    threads: int,
    seed: int,
    rate: float,
    observer: Observer,
    init: rust_core.Model | None = None,
) -> tuple[rust_core.Model, Metrics]:
    """Train on tokenised rows and evaluate on the validation rows (training from prepared
    shards, `control.scale.train`; the same steps as `train_tables`)."""
    trained = _fit(
        algo=algo,
        hyper=hyper,
        train_set=train_set,
        valid_set=valid_set,
        obs=observer,
        threads=threads,
        seed=seed,
        spec=spec,
        rate=rate,
        init=init,
    )
    observer.stage(f"evaluating on {len(valid_labels):,} validation rows")
    metrics = evaluate(valid_labels, trained.predict(valid_set), valid_weights)
    if not math.isfinite(metrics.logloss):
        raise TrainingInputError("training diverged (non-finite logloss); lower eta or alpha")
    return trained, metrics


def train_tables(
    model: str,
    data: Data,
    *,
    algo: str | None = None,
    params: dict[str, Any] | None = None,
    threads: int = 1,
    seed: int = 0,
    downsample: float | None = None,
    observer: Observer | None = None,
    catalog: Catalog | None = None,
    params_source: str | None = None,
    on_disk: bool = False,
    memory_budget: int | None = None,
    init: rust_core.Model | None = None,
    parent_version: str | None = None,
) -> TrainedModel:
    """Train `model` on `data.train`, evaluate on `data.valid`, profile the training rows.

    `params_source` ("saved": tuned parameters from the registry, "default") is recorded
    with the parameters in the manifest.

    The tokenised training rows go to CSR shards in a temporary directory and train out of
    core (`rust_core.ShardedDataset`) with `on_disk`, or when their estimated size exceeds
    `memory_budget` bytes (`control.prepared`); validation rows stay in memory. `init` warm
    starts from that model (`parent_version` is recorded in the manifest)."""
    obs = observer or QuietObserver()
    spec = model_spec(model, catalog)
    target = model_target(model, catalog)
    algo = algo or spec.algorithm
    hyper = hyper_parameters(algo, params)
    if threads < 1:
        raise TrainingInputError(f"--threads must be >= 1, got {threads}")
    check_labels(data.train, target.label, "training rows")
    check_labels(data.valid, target.label, "validation rows")
    if init is not None:
        label = f"{spec.name} version {parent_version}" if parent_version else "the given model"
        check_compatible(init, label, spec, algo, hyper)

    obs.stage(
        f"profiling {data.train.num_rows:,} training rows"
        f" ({data.valid.num_rows:,} held out for validation)"
    )
    profile = profile_table(data.train, spec_features(spec))

    # The logs' recorded rate is of click negatives: a target trained on clicked rows only
    # (cvr) saw every one of them, so no correction applies to it.
    data_rate = downsample_rate(data.train) if target.where is None else 1.0
    mixed_rates = data_rate == 1.0 and WEIGHT_COLUMN in data.train.column_names
    extra_rate = downsample if downsample is not None else 1.0
    train = downsample_negatives(data.train, target.label, extra_rate, seed)
    check_labels(train, target.label, "training rows after downsampling")
    weight_column = WEIGHT_COLUMN if mixed_rates else None
    storage = choose_storage(
        train,
        spec,
        on_disk=on_disk,
        budget=memory_budget,
        extra_rows=data.valid.num_rows,
        weighted=mixed_rates,
    )
    obs.stage(f"training {'on disk' if storage.on_disk else 'in memory'}: {storage.reason}")
    with tempfile.TemporaryDirectory(prefix="bidscore-shards-") as shard_dir:
        if storage.on_disk:
            rows = shard_rows(storage, train.num_rows)
            obs.stage(
                f"tokenising {train.num_rows:,} training rows into shards of {rows:,} rows"
                f" and {data.valid.num_rows:,} validation rows"
            )
            root = Path(shard_dir) / "train"
            index = write_table_shards(
                train, spec, target.label, root, weights=weight_column, rows_per_shard=rows
            )
            train_set: rust_core.Dataset | rust_core.ShardedDataset = sharded(root)
            prepared = {**storage.to_json(), "shards": len(index.shards), "shard_rows": rows}
        else:
            obs.stage(
                f"tokenising {train.num_rows:,} training and"
                f" {data.valid.num_rows:,} validation rows"
            )
            train_set = tokenize_table(train, spec, target.label, weight_column)
            prepared = storage.to_json()
        valid_set = tokenize_table(data.valid, spec, target.label)
        trained = _fit(
            algo=algo,
            hyper=hyper,
            train_set=train_set,
            valid_set=valid_set,
            obs=obs,
            threads=threads,
            seed=seed,
            spec=spec,
            rate=rate_of(data_rate, extra_rate, mixed_rates),
            init=init,
        )
        del train_set

    rate = rate_of(data_rate, extra_rate, mixed_rates)
    obs.stage(f"evaluating on {data.valid.num_rows:,} validation rows")
    predictions = trained.predict(valid_set)
    metrics = evaluate(data.valid[target.label].to_numpy(), predictions, _weights(data.valid))
    if not math.isfinite(metrics.logloss):
        raise TrainingInputError("training diverged (non-finite logloss); lower eta or alpha")
    return TrainedModel(
        name=spec.name,
        spec=spec,
        model=trained,
        metrics=metrics,
        profile=dict(profile),
        params={
            **hyper,
            "threads": threads,
            "seed": seed,
            "valid_fraction": data.valid_fraction,
            "downsample_negatives": downsample,
            "downsample_rate": rate,
            "weighted": mixed_rates,
            "best_epoch": trained.best_epoch,
            **({"params_source": params_source} if params_source else {}),
            **({"warm_start": parent_version} if parent_version is not None else {}),
        },
        data={
            "paths": data.paths,
            "valid_paths": data.valid_paths,
            "rows": data.train.num_rows + data.valid.num_rows,
            "train_rows": train.num_rows,
            "valid_rows": data.valid.num_rows,
            "label": target.label,
            "where": target.where,
            "window": data_window(data.train),
            "prepared": prepared,
        },
        parent_version=parent_version,
    )


def rate_of(data_rate: float, extra_rate: float, mixed_rates: bool) -> float:
    """The negative-keeping rate the model corrects its scores for (1 for weighted data)."""
    return 1.0 if mixed_rates else data_rate * extra_rate


def _fit(
    *,
    algo: str,
    hyper: dict[str, Any],
    train_set: rust_core.Dataset | rust_core.ShardedDataset,
    valid_set: rust_core.Dataset,
    obs: Observer,
    threads: int,
    seed: int,
    spec: ModelSpec,
    rate: float,
    init: rust_core.Model | None,
) -> rust_core.Model:
    epochs = int(hyper["epochs"])
    start = " from the parent model" if init is not None else ""
    obs.stage(f"training {algo}{start}: up to {epochs} epochs, {threads} thread(s)")

    def on_epoch(epoch: int, train_ll: float, valid_ll: float | None) -> None:
        obs.epoch(epoch, epochs, train_ll, valid_ll)

    common: dict[str, Any] = {
        "threads": threads,
        "seed": seed,
        "bits": spec.bits,
        "fingerprint": spec.fingerprint,
        "downsample_rate": rate,
        "progress": on_epoch,
        "init": init,
    }
    trainer = rust_core.train_ffm if algo == "ffm" else rust_core.train_lr
    try:
        return trainer(train_set, valid_set, **hyper, **common)
    except rust_core.DataError as exc:
        if init is not None and "warm-start" in str(exc):
            raise WarmStartError(str(exc)) from None
        raise


def artifact_key(model: str, checksum: str, key: str | None) -> str:
    """Where the model file goes: stable for an idempotency key (a retried run overwrites its
    own object instead of leaving a stray one), else timestamp + checksum + a random part (two
    trainings of the same bytes are still two versions)."""
    if key is not None:
        return f"{model}/k-{hashlib.sha256(key.encode()).hexdigest()[:24]}.model"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{model}/{stamp}-{checksum[:12]}-{uuid.uuid4().hex[:8]}.model"


def publish(
    trained: TrainedModel,
    registry: Registry,
    store: ArtifactStore,
    *,
    key: str | None = None,
    extra: dict[str, Any] | None = None,
    observer: Observer | None = None,
) -> Version:
    """Save the model and its manifest to the store, then register the version.

    The version is registered only after both uploads completed; if the manifest upload fails
    the model object is deleted again. With `key`, a version already registered under it is
    returned without uploading anything. `extra` adds fields to the manifest (e.g. retrain
    comparisons).
    """
    obs = observer or QuietObserver()
    if key is not None and (existing := registry.find_version(trained.name, key)) is not None:
        return existing
    with tempfile.TemporaryDirectory(prefix="bidscore-publish-") as tmp:
        model_path = Path(tmp) / "model.bin"
        trained.model.save(str(model_path))
        sha256 = file_sha256(model_path)
        object_key = artifact_key(trained.name, sha256, key)
        manifest = Manifest.from_json(trained.manifest().to_json() | (extra or {})).replace(
            sha256=sha256,
            key=object_key,
            idempotency_key=key,
            artifact_uri=store.uri_for(object_key),
        )
        manifest_path = Path(tmp) / "manifest.json"
        write_manifest(manifest, manifest_path)
        obs.stage("uploading")
        obs.transfer("model", model_path.stat().st_size)
        uri = store.put(model_path, object_key, progress=obs.advance)
        try:
            store.put(manifest_path, object_key + MANIFEST_SUFFIX)
        except BaseException:
            store.delete(uri)
            raise
    return registry.register_version(trained.name, manifest, uri, key=key)
