"""Training from prepared shards: the same split, downsampling, training and evaluation as
`control.training.train_tables`, on rows tokenised by preparation tasks.

The validation split and negative downsampling draw the same seeded masks over the same row
order as the in-memory path (`load_data`, `downsample_negatives`), so with threads=1 the model
file is the same, byte for byte. What differs is recorded: the data profile is merged from
the shards' profiles of all target rows (approximate where noted in `merge_profiles`), not
computed over the training split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from control.errors import TrainingInputError
from control.scale.prepare import Csr, Prepared, load_csr
from control.training import (
    Observer,
    QuietObserver,
    TrainedModel,
    fit,
    hyper_parameters,
    model_spec,
    model_target,
)
from features.catalog import Catalog


def _check_labels(labels: np.ndarray, label: str, where: str) -> None:
    positives = int(labels.sum())
    if positives in (0, len(labels)):
        raise TrainingInputError(
            f"{where}: {label} is {int(positives > 0)} in all {len(labels)} rows;"
            " a model needs both label values"
        )


def train_prepared(
    model: str,
    prepared: Prepared,
    *,
    valid: Prepared | None = None,
    valid_fraction: float = 0.1,
    algo: str | None = None,
    params: dict[str, Any] | None = None,
    threads: int = 1,
    seed: int = 0,
    downsample: float | None = None,
    observer: Observer | None = None,
    catalog: Catalog | None = None,
    params_source: str | None = None,
    init: Any | None = None,
    parent_version: str | None = None,
) -> TrainedModel:
    """Train `model` on prepared rows (`valid`: prepared validation logs, else a seeded
    `valid_fraction` of the rows, as `control.training.load_data` holds out)."""
    obs = observer or QuietObserver()
    spec = model_spec(model, catalog)
    target = model_target(model, catalog)
    algo = algo or spec.algorithm
    hyper = hyper_parameters(algo, params)
    if threads < 1:
        raise TrainingInputError(f"--threads must be >= 1, got {threads}")
    if prepared.index.fingerprint != spec.fingerprint:
        raise TrainingInputError(
            f"{prepared.index.root}: prepared for spec {prepared.index.fingerprint},"
            f" {model} is {spec.fingerprint}"
        )
    obs.stage(f"loading {prepared.rows:,} prepared rows from {len(prepared.index.shards)} shards")
    rows = load_csr(prepared.index)
    if rows.rows == 0:
        raise TrainingInputError(
            f"{', '.join(prepared.sources)}: no rows to train {target.label} on"
        )
    _check_labels(rows.labels, target.label, "training data")
    if valid is not None:
        train_rows, valid_rows = rows, load_csr(valid.index)
        fraction = None
    else:
        if not 0 < valid_fraction < 1:
            raise TrainingInputError(f"--valid-fraction must be in (0, 1), got {valid_fraction}")
        held_out = np.random.default_rng(seed).random(rows.rows) < valid_fraction
        train_rows, valid_rows = rows.take(~held_out), rows.take(held_out)
        fraction = valid_fraction
        if train_rows.rows == 0 or valid_rows.rows == 0:
            raise TrainingInputError(
                f"{rows.rows} rows are too few to hold out {valid_fraction:.0%} for validation"
            )
    _check_labels(train_rows.labels, target.label, "training rows")
    _check_labels(valid_rows.labels, target.label, "validation rows")

    data_rate = prepared.rate if target.where is None else 1.0
    mixed_rates = data_rate == 1.0 and prepared.weighted
    extra_rate = downsample if downsample is not None else 1.0
    if not 0 < extra_rate <= 1:
        raise TrainingInputError(f"--downsample-negatives must be in (0, 1], got {extra_rate}")
    train = train_rows
    if extra_rate < 1:
        keep = (train_rows.labels == 1) | (
            np.random.default_rng(seed + 1).random(train_rows.rows) < extra_rate
        )
        train = train_rows.take(keep)
    _check_labels(train.labels, target.label, "training rows after downsampling")
    rate = 1.0 if mixed_rates else data_rate * extra_rate
    valid_weights = None if valid_rows.weights is None else valid_rows.weights.astype(np.float64)
    trained, metrics = fit(
        spec,
        train.dataset(weighted=mixed_rates),
        valid_rows.dataset(weighted=False),
        algo=algo,
        hyper=hyper,
        valid_labels=valid_rows.labels.astype(np.int64),
        valid_weights=valid_weights,
        threads=threads,
        seed=seed,
        rate=rate,
        observer=obs,
        init=init,
    )
    return TrainedModel(
        name=spec.name,
        spec=spec,
        model=trained,
        metrics=metrics,
        profile=dict(prepared.index.profile or {}),
        params={
            **hyper,
            "threads": threads,
            "seed": seed,
            "valid_fraction": fraction,
            "downsample_negatives": downsample,
            "downsample_rate": rate,
            "weighted": mixed_rates,
            "best_epoch": trained.best_epoch,
            **({"params_source": params_source} if params_source else {}),
            **({"warm_start": parent_version} if parent_version is not None else {}),
        },
        data={
            "paths": prepared.sources,
            "valid_paths": valid.sources if valid is not None else [],
            "rows": train_rows.rows + valid_rows.rows,
            "train_rows": train.rows,
            "valid_rows": valid_rows.rows,
            "label": target.label,
            "where": target.where,
            "window": prepared.window,
            "prepared": {
                "shards": len(prepared.index.shards),
                "wall_seconds": round(prepared.wall_seconds, 3),
                "cpu_seconds": round(prepared.cpu_seconds, 3),
            },
        },
        parent_version=parent_version,
    )


__all__ = ["Csr", "train_prepared"]
