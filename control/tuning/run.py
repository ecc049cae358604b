"""`control tune`'s library: read logs, make folds, tokenise them and search.

Without `--cv` the search validates on `--valid` logs or a seeded `--valid-fraction` of the
rows (as `control train` does). With `--cv K` it uses forward-chaining day folds when `--data`
is one directory of `dt=YYYY-MM-DD` partitions, random K-fold over rows otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

import rust_core
from control.errors import TuningError
from control.retrain.data import list_partitions
from control.training import (
    check_labels,
    data_window,
    load_data,
    model_spec,
    model_target,
)
from control.tuning.distributed import Csr, FoldArrays, run_search_ray
from control.tuning.folds import day_folds, random_folds
from control.tuning.search import Fold, SearchOptions, TrialCallback, TuneResult, run_search
from features.catalog import Catalog
from features.readers import combine_tables, downsample_rate, read_logs
from features.readers.cast import WEIGHT_COLUMN
from features.spec import ModelSpec, Target
from features.tokenize import numeric_column, table_csr, tokenize_table


@dataclass(frozen=True)
class TuneRequest:
    """Everything `control tune` was asked, bar the output."""

    model: str
    data: Sequence[str | Path]
    valid: Sequence[str | Path] = ()
    valid_fraction: float = 0.1
    cv: int | None = None
    algo: str | None = None
    options: SearchOptions = field(default_factory=SearchOptions)
    # FFM only: False tunes LIBFFM's model (no bias or linear terms) in every trial.
    linear: bool = True


@dataclass(frozen=True)
class Prepared:
    """The folds of a search and what they were made of (saved with the parameters)."""

    algorithm: str
    folds: list[Fold]
    fixed: dict[str, Any]
    data: dict[str, Any]
    # The folds as CSR arrays, for trials in Ray tasks (`prepare(..., arrays=True)`)
    arrays: list[FoldArrays] = field(default_factory=list)


class _Tokens:
    """Tokenises tables for one spec the way `control.training.train_tables` does."""

    def __init__(
        self, spec: ModelSpec, target: Target, sample: pa.Table, arrays: bool = False
    ) -> None:
        self.spec, self.label = spec, target.label
        self.keep_arrays = arrays
        self.arrays: list[FoldArrays] = []
        rate = downsample_rate(sample) if target.where is None else 1.0
        self.weighted = rate == 1.0 and WEIGHT_COLUMN in sample.column_names
        self.fixed = {
            "bits": spec.bits,
            "fingerprint": spec.fingerprint,
            "downsample_rate": 1.0 if self.weighted else rate,
        }

    def train(self, table: pa.Table) -> rust_core.Dataset:
        return tokenize_table(
            table, self.spec, self.label, WEIGHT_COLUMN if self.weighted else None
        )

    def valid(self, table: pa.Table) -> rust_core.Dataset:
        return tokenize_table(table, self.spec, self.label)

    def _csr(self, table: pa.Table, weighted: bool) -> Csr:
        indptr, fields, indices, values = table_csr(table, self.spec)
        weights = numeric_column(table, WEIGHT_COLUMN) if weighted else None
        return indptr, fields, indices, values, numeric_column(table, self.label), weights

    def fold(self, train: pa.Table, valid: pa.Table, name: str = "train/valid") -> Fold:
        """A fold; with `arrays`, built from CSR arrays that are also kept for Ray tasks."""
        if not self.keep_arrays:
            return Fold(self.train(train), self.valid(valid), name)
        arrays = FoldArrays(self._csr(train, self.weighted), self._csr(valid, False), name)
        self.arrays.append(arrays)
        return arrays.fold()


def _target(table: pa.Table, target: Target) -> pa.Table:
    if target.where is not None:
        table = table.filter(pc.equal(table[target.where], 1))
    return table


def _required(target: Target) -> list[str]:
    return [target.label] + ([target.where] if target.where else [])


def _dated_root(data: Sequence[str | Path]) -> str | None:
    """The one `--data` directory (or s3:// prefix) holding dt= partitions, if that is it."""
    if len(data) != 1:
        return None
    root = str(data[0])
    if not root.startswith("s3://") and not Path(root).is_dir():
        return None
    return root if list_partitions(root) else None


def prepare(
    request: TuneRequest, catalog: Catalog | None = None, *, arrays: bool = False
) -> Prepared:
    """Read and split the logs into tokenised folds (`arrays`: also as CSR arrays, for
    trials in Ray tasks)."""
    spec = model_spec(request.model, catalog)
    target = model_target(request.model, catalog)
    algo = request.algo or spec.algorithm
    if request.cv is not None and request.valid:
        raise TuningError("--cv and --valid are exclusive: folds choose their own validation")
    paths = [str(p) for p in request.data]
    if request.cv is None:
        loaded = load_data(
            request.model,
            request.data,
            valid_paths=request.valid,
            valid_fraction=request.valid_fraction,
            seed=request.options.seed,
            catalog=catalog,
        )
        check_labels(loaded.valid, target.label, "validation rows")
        tokens = _Tokens(spec, target, loaded.train, arrays)
        fold = tokens.fold(loaded.train, loaded.valid)
        return Prepared(
            algo,
            [fold],
            tokens.fixed,
            {
                "paths": paths,
                "valid_paths": [str(p) for p in request.valid],
                "rows": loaded.train.num_rows + loaded.valid.num_rows,
                "window": data_window(loaded.train),
                "cv": None,
            },
            tokens.arrays,
        )
    root = _dated_root(request.data)
    if root is not None:
        return _by_day(request, root, spec, target, algo, arrays=arrays)
    table = _target(read_logs(paths, required_labels=_required(target)), target)
    check_labels(table, target.label, "training data")
    tokens = _Tokens(spec, target, table, arrays)
    folds = [
        tokens.fold(table.take(pa.array(f.train)), table.take(pa.array(f.valid)), f.name)
        for f in random_folds(table.num_rows, request.cv, request.options.seed)
    ]
    return Prepared(
        algo,
        folds,
        tokens.fixed,
        {
            "paths": paths,
            "rows": table.num_rows,
            "window": data_window(table),
            "cv": {"kind": "random", "k": request.cv},
        },
        tokens.arrays,
    )


def _by_day(
    request: TuneRequest,
    root: str,
    spec: ModelSpec,
    target: Target,
    algo: str,
    *,
    arrays: bool = False,
) -> Prepared:
    assert request.cv is not None
    partitions = list_partitions(root)
    folds = day_folds([p.day for p in partitions], request.cv)
    needed = {d for f in folds for d in (*f.train_days, f.valid_day)}
    tables = {
        p.day: _target(read_logs(p.path, required_labels=_required(target)), target)
        for p in partitions
        if p.day in needed
    }
    paths = {p.day: p.path for p in partitions}
    first = tables[min(tables)]
    tokens = _Tokens(spec, target, first, arrays)
    built = []
    for f in folds:
        train = combine_tables([tables[d] for d in f.train_days], [paths[d] for d in f.train_days])
        built.append(tokens.fold(train, tables[f.valid_day], f.name))
    days = sorted(tables)
    return Prepared(
        algo,
        built,
        tokens.fixed,
        {
            "paths": [root],
            "rows": sum(t.num_rows for t in tables.values()),
            "window": {"start": days[0].isoformat(), "end": days[-1].isoformat()},
            "cv": {
                "kind": "day",
                "k": request.cv,
                "folds": [
                    {
                        "train": [d.isoformat() for d in f.train_days],
                        "valid": f.valid_day.isoformat(),
                    }
                    for f in folds
                ],
            },
        },
        tokens.arrays,
    )


def run(
    request: TuneRequest,
    catalog: Catalog | None = None,
    *,
    on_trial: TrialCallback | None = None,
    prepared: Prepared | None = None,
    ray: Any | None = None,
) -> tuple[TuneResult, Prepared]:
    """Prepare the folds (unless given) and search; the result and its folds. With `ray`
    (a connected `ray` module) the trials run as Ray tasks (`control.tuning.distributed`)."""
    request.options.check()
    ready = prepared or prepare(request, catalog, arrays=ray is not None)
    model: dict[str, Any] = {}
    if not request.linear:
        if ready.algorithm != "ffm":
            raise TuningError(f"--no-linear applies to ffm models, not {ready.algorithm}")
        model = {"linear": False}
    options = dataclasses.replace(request.options, fixed=ready.fixed | model)
    if ray is not None:
        if not ready.arrays:
            raise TuningError("trials on Ray need folds prepared with arrays=True")
        result = run_search_ray(ready.algorithm, ready.arrays, options, ray, on_trial=on_trial)
    else:
        result = run_search(ready.algorithm, ready.folds, options, on_trial=on_trial)
    return result, ready


def fold_rows(prepared: Prepared) -> list[tuple[str, int, int]]:
    """(name, training rows, validation rows) per fold, for the CLI."""
    return [(f.name, f.train.num_rows, f.valid.num_rows) for f in prepared.folds]
