"""Training from prepared shards: the same split, downsampling, training and evaluation as
`control.training.train_tables`, on rows tokenised by preparation tasks.

The validation split and negative downsampling draw the same seeded masks over the same row
order as the in-memory path (`load_data`, `downsample_negatives`), so with threads=1 the model
file is the same, byte for byte. What differs is recorded: the data profile is merged from
the shards' profiles of all target rows (approximate where noted in `merge_profiles`), not
computed over the training split.

Out of core (`on_disk`, or the prepared rows' exact size above `memory_budget`), the masks are
drawn shard by shard: row r of the data (counting over the shards in index order) is held out
when the r-th draw of `numpy.random.default_rng(seed)` is below the fraction, the very draw
the in-memory path makes, reached by advancing the PCG64 generator by the shard's first row
(`shard_draws`). Each shard is read alone, its training rows (after downsampling) written to
a shard of a run-local training root and its validation rows kept in memory (a tenth of the
data); `rust_core.ShardedDataset` then streams the training root. Peak memory: a shard or
two, the model and the validation rows. The shards are per input file on both executors
(`prepare` in this process or in Ray tasks), so the two train the same model at threads=1;
with shuffling (the default) it differs from the in-memory model by the order rows are
visited in, and equals it with `shuffle=False`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from control.errors import TrainingInputError
from control.prepared import human_bytes, sharded
from control.scale.prepare import Csr, Prepared, load_csr
from control.shards import ShardIndex, ShardInfo, read_shard, write_index, write_shard
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


def shard_draws(seed: int, start: int, rows: int) -> npt.NDArray[np.float64]:
    """Draws `start .. start + rows` of `numpy.random.default_rng(seed).random(N)` (any N
    beyond them), without drawing the first `start`: PCG64 makes one 64-bit draw per float."""
    bits = np.random.PCG64(seed)
    bits.advance(start)
    return np.random.Generator(bits).random(rows)


def prepared_bytes(index: ShardIndex, *, weighted: bool) -> int:
    """Bytes the prepared rows take in memory (as `control.prepared.prepared_bytes`, exact)."""
    return int(index.nnz * 12 + index.rows * (12 + (4 if weighted else 0)))


def storage_of(
    prepared: Prepared, *, on_disk: bool, memory_budget: int | None
) -> tuple[bool, str, int]:
    """(out of core?, why, bytes): `--on-disk`, or the exact prepared size over the budget."""
    size = prepared_bytes(prepared.index, weighted=prepared.weighted)
    if on_disk:
        return True, "--on-disk was given", size
    if memory_budget is None:
        return False, "no memory budget set", size
    verdict = "exceed" if size > memory_budget else "fit"
    why = (
        f"the prepared rows ({human_bytes(size)}) {verdict} the memory budget"
        f" ({human_bytes(memory_budget)})"
    )
    return size > memory_budget, why, size


def _shard_csr(path: Path, weighted: bool) -> Csr:
    a = read_shard(path)
    weights = a.get("weights")
    if weighted and weights is None:
        weights = np.ones(len(a["labels"]), np.float32)
    return Csr(
        indptr=a["indptr"],
        fields=a["fields"],
        indices=a["indices"],
        values=a["values"],
        labels=a["labels"],
        weights=weights if weighted else None,
    )


def _concat(parts: list[Csr], weighted: bool) -> Csr:
    nnz = np.cumsum([0] + [len(p.fields) for p in parts[:-1]]).astype(np.uint64)
    return Csr(
        indptr=np.concatenate(
            [np.zeros(1, np.uint64)]
            + [p.indptr[1:] + off for p, off in zip(parts, nnz, strict=True)]
        ),
        fields=np.concatenate([p.fields for p in parts]),
        indices=np.concatenate([p.indices for p in parts]),
        values=np.concatenate([p.values for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        weights=np.concatenate([p.weights for p in parts if p.weights is not None])
        if weighted
        else None,
    )


def split_shards(
    index: ShardIndex,
    out: Path,
    *,
    seed: int,
    valid_fraction: float | None,
    extra_rate: float,
    weighted: bool,
    train_weights: bool,
) -> tuple[ShardIndex, Csr | None, dict[str, int]]:
    """Split prepared shards one at a time (see the module docstring): the training rows
    (negatives kept at `extra_rate`) as shards under `out` with their index, the validation
    rows in memory (None without `valid_fraction`), and counts for the label checks."""
    infos: list[ShardInfo] = []
    valid_parts: list[Csr] = []
    row, train_row = 0, 0
    counts = {"rows": 0, "positives": 0, "train": 0, "train_pos": 0, "valid": 0, "valid_pos": 0}
    counts |= {"kept": 0, "kept_pos": 0}
    for info, path in zip(index.shards, index.paths(), strict=True):
        rows = _shard_csr(path, weighted)
        counts["rows"] += rows.rows
        counts["positives"] += int(rows.labels.sum())
        if valid_fraction is not None:
            held = shard_draws(seed, row, rows.rows) < valid_fraction
            row += rows.rows
            valid = rows.take(held)
            valid_parts.append(valid)
            counts["valid"] += valid.rows
            counts["valid_pos"] += int(valid.labels.sum())
            rows = rows.take(~held)
        counts["train"] += rows.rows
        counts["train_pos"] += int(rows.labels.sum())
        if extra_rate < 1:
            keep = (rows.labels == 1) | (shard_draws(seed + 1, train_row, rows.rows) < extra_rate)
            train_row += rows.rows
            rows = rows.take(keep)
        counts["kept"] += rows.rows
        counts["kept_pos"] += int(rows.labels.sum())
        if rows.rows:
            infos.append(
                write_shard(
                    out,
                    info.name,
                    indptr=rows.indptr,
                    fields=rows.fields,
                    indices=rows.indices,
                    values=rows.values,
                    labels=rows.labels,
                    weights=rows.weights if train_weights else None,
                )
            )
        del rows
    write_index(
        out,
        infos,
        fingerprint=index.fingerprint,
        hash_bits=index.hash_bits,
        num_fields=index.num_fields,
    )
    from control.shards import read_index  # noqa: PLC0415

    valid_rows = _concat(valid_parts, weighted) if valid_parts else None
    return read_index(out), valid_rows, counts


def _check_counts(positives: int, rows: int, label: str, where: str) -> None:
    if positives in (0, rows):
        raise TrainingInputError(
            f"{where}: {label} is {int(positives > 0)} in all {rows} rows;"
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
    on_disk: bool = False,
    memory_budget: int | None = None,
) -> TrainedModel:
    """Train `model` on prepared rows (`valid`: prepared validation logs, else a seeded
    `valid_fraction` of the rows, as `control.training.load_data` holds out); out of core
    with `on_disk` or when the rows exceed `memory_budget` bytes (module docstring)."""
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
    if valid is None and not 0 < valid_fraction < 1:
        raise TrainingInputError(f"--valid-fraction must be in (0, 1), got {valid_fraction}")
    extra_rate = downsample if downsample is not None else 1.0
    if not 0 < extra_rate <= 1:
        raise TrainingInputError(f"--downsample-negatives must be in (0, 1], got {extra_rate}")
    data_rate = prepared.rate if target.where is None else 1.0
    mixed_rates = data_rate == 1.0 and prepared.weighted
    rate = 1.0 if mixed_rates else data_rate * extra_rate
    out_of_core, why, size = storage_of(prepared, on_disk=on_disk, memory_budget=memory_budget)
    storage = {
        "storage": "disk" if out_of_core else "memory",
        "reason": why,
        "estimate_bytes": size,
        "budget_bytes": memory_budget,
    }
    obs.stage(f"training {'on disk' if out_of_core else 'in memory'}: {why}")
    with tempfile.TemporaryDirectory(prefix="bidscore-split-") as workdir:
        if out_of_core:
            train_set, valid_rows, counts = _split_on_disk(
                prepared,
                valid,
                Path(workdir) / "train",
                seed=seed,
                valid_fraction=valid_fraction,
                extra_rate=extra_rate,
                mixed_rates=mixed_rates,
                label=target.label,
                obs=obs,
            )
            train_rows, kept_rows = counts["train"], counts["kept"]
        else:
            train_set, valid_rows, train_rows, kept_rows = _split_in_memory(
                prepared,
                valid,
                seed=seed,
                valid_fraction=valid_fraction,
                extra_rate=extra_rate,
                mixed_rates=mixed_rates,
                label=target.label,
                obs=obs,
            )
        valid_weights = (
            None if valid_rows.weights is None else valid_rows.weights.astype(np.float64)
        )
        trained, metrics = fit(
            spec,
            train_set,
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
        del train_set
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
            "valid_fraction": None if valid is not None else valid_fraction,
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
            "rows": train_rows + valid_rows.rows,
            "train_rows": kept_rows,
            "valid_rows": valid_rows.rows,
            "label": target.label,
            "where": target.where,
            "window": prepared.window,
            "prepared": {
                "shards": len(prepared.index.shards),
                "wall_seconds": round(prepared.wall_seconds, 3),
                "cpu_seconds": round(prepared.cpu_seconds, 3),
                **storage,
            },
        },
        parent_version=parent_version,
    )


def _split_in_memory(
    prepared: Prepared,
    valid: Prepared | None,
    *,
    seed: int,
    valid_fraction: float,
    extra_rate: float,
    mixed_rates: bool,
    label: str,
    obs: Observer,
) -> tuple[Any, Csr, int, int]:
    """Every shard loaded, then the masks drawn over all rows (`load_data`'s split)."""
    obs.stage(f"loading {prepared.rows:,} prepared rows from {len(prepared.index.shards)} shards")
    rows = load_csr(prepared.index)
    if rows.rows == 0:
        raise TrainingInputError(f"{', '.join(prepared.sources)}: no rows to train {label} on")
    _check_labels(rows.labels, label, "training data")
    if valid is not None:
        train_rows, valid_rows = rows, load_csr(valid.index)
    else:
        held_out = np.random.default_rng(seed).random(rows.rows) < valid_fraction
        train_rows, valid_rows = rows.take(~held_out), rows.take(held_out)
        if train_rows.rows == 0 or valid_rows.rows == 0:
            raise TrainingInputError(
                f"{rows.rows} rows are too few to hold out {valid_fraction:.0%} for validation"
            )
    _check_labels(train_rows.labels, label, "training rows")
    _check_labels(valid_rows.labels, label, "validation rows")
    train = train_rows
    if extra_rate < 1:
        keep = (train_rows.labels == 1) | (
            np.random.default_rng(seed + 1).random(train_rows.rows) < extra_rate
        )
        train = train_rows.take(keep)
    _check_labels(train.labels, label, "training rows after downsampling")
    return train.dataset(weighted=mixed_rates), valid_rows, train_rows.rows, train.rows


def _split_on_disk(
    prepared: Prepared,
    valid: Prepared | None,
    root: Path,
    *,
    seed: int,
    valid_fraction: float,
    extra_rate: float,
    mixed_rates: bool,
    label: str,
    obs: Observer,
) -> tuple[Any, Csr, dict[str, int]]:
    """The masks drawn shard by shard (`split_shards`); training rows streamed from disk."""
    if not prepared.index.shards or prepared.rows == 0:
        raise TrainingInputError(f"{', '.join(prepared.sources)}: no rows to train {label} on")
    obs.stage(
        f"splitting {prepared.rows:,} prepared rows shard by shard"
        f" ({len(prepared.index.shards)} shards) into training shards and validation rows"
    )
    index, held, counts = split_shards(
        prepared.index,
        root,
        seed=seed,
        valid_fraction=None if valid is not None else valid_fraction,
        extra_rate=extra_rate,
        weighted=prepared.weighted,
        train_weights=mixed_rates,
    )
    _check_counts(counts["positives"], counts["rows"], label, "training data")
    if valid is not None:
        valid_rows = load_csr(valid.index)
    else:
        assert held is not None
        valid_rows = held
        if counts["train"] == 0 or counts["valid"] == 0:
            raise TrainingInputError(
                f"{counts['rows']} rows are too few to hold out {valid_fraction:.0%} for validation"
            )
    _check_counts(counts["train_pos"], counts["train"], label, "training rows")
    _check_labels(valid_rows.labels, label, "validation rows")
    _check_counts(counts["kept_pos"], counts["kept"], label, "training rows after downsampling")
    obs.stage(f"training from {len(index.shards)} shards under {index.root}")
    return sharded(index.root), valid_rows, counts


__all__ = ["Csr", "train_prepared"]
