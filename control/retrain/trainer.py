"""Training and publishing for a retraining run, through the same code as `control train`.

`control.training` reads paths; a run has already read its partitions (validation needed
them), so this module hands the tables to `train_tables` and `publish` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

import rust_core
from bidscore.registry.base import Registry, Version
from bidscore.store.base import ArtifactStore
from control.retrain.data import Tables, target_rows
from control.training import (
    DEFAULTS,
    Data,
    TrainedModel,
    hyper_parameters,
    model_spec,
    publish,
    train_tables,
)
from features.catalog import Catalog
from features.spec import ModelSpec

# The share of the training window held out for training's own validation metrics (and for
# early stopping when auto_stop is on): the run's holdout days stay unseen until evaluation.
VALID_FRACTION = 0.1
SEED = 0


def spec_for(model: str, catalog: Catalog | None = None) -> ModelSpec:
    """The model's feature spec (one-line error for an unknown model)."""
    return model_spec(model, catalog)


def algorithm_for(
    model: str, recorded_algorithm: str | None, override: str | None, catalog: Catalog | None
) -> str:
    """`--algo`, else the production version's algorithm, else the spec's default."""
    return override or recorded_algorithm or model_spec(model, catalog).algorithm


def params_for(
    algo: str,
    recorded: dict[str, Any] | None,
    overrides: dict[str, Any],
    recorded_algorithm: str | None = None,
) -> dict[str, Any]:
    """Defaults <- the production version's recorded values <- `overrides` (the saved tuned
    parameters, then `--param`).

    Recorded values count only when the production version used the same algorithm, and
    only for names that are hyper-parameters (manifests also record bookkeeping such as
    `best_epoch`); unknown override names are one-line errors from `control.training`.
    """
    base = hyper_parameters(algo)
    same_algo = recorded is not None and (recorded_algorithm or algo) == algo
    inherited = {k: v for k, v in (recorded or {}).items() if same_algo and k in base}
    return hyper_parameters(algo, inherited | overrides)


def hyper_parameter_names() -> list[str]:
    """Every name `--param` may use (which apply depends on the algorithm)."""
    return sorted({name for defaults in DEFAULTS.values() for name in defaults})


def split(tables: Tables, model: str, paths: list[str], catalog: Catalog | None = None) -> Data:
    """The window's target rows, with a seeded `VALID_FRACTION` held out for validation."""
    rows, _ = target_rows(tables.train, model, catalog)
    held_out = np.random.default_rng(SEED).random(rows.num_rows) < VALID_FRACTION
    return Data(
        train=rows.filter(pa.array(~held_out)),
        valid=rows.filter(pa.array(held_out)),
        paths=paths,
        valid_fraction=VALID_FRACTION,
    )


def train(
    model: str,
    tables: Tables,
    *,
    algo: str,
    params: dict[str, Any],
    paths: list[str],
    threads: int,
    catalog: Catalog | None = None,
    params_source: str | None = None,
    on_disk: bool = False,
    memory_budget: int | None = None,
    init: rust_core.Model | None = None,
    parent_version: str | None = None,
    store: ArtifactStore | None = None,
    specs: str | None = None,
    run_id: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> TrainedModel:
    """Train on the window with `algo` and its hyper-parameters `params` (`params_source`:
    whether saved tuned parameters are among them, recorded in the manifest), warm-started
    as `control.training.train_tables` describes.

    Out of core (`on_disk`, or the window's tokenised rows estimated above `memory_budget`)
    the window's files are prepared into shards in this process (`store` given) and trained
    from as on the Ray executor (`train_distributed`): the same shards, split shard by shard
    by the same rule, so the same model."""
    data = split(tables, model, paths, catalog)
    if store is not None and (on_disk or memory_budget is not None):
        from control.prepared import choose_storage  # noqa: PLC0415
        from control.scale.prepare import cleanup, prepare  # noqa: PLC0415

        storage = choose_storage(
            data.train,
            spec_for(model, catalog),
            on_disk=on_disk,
            budget=memory_budget,
            extra_rows=data.valid.num_rows,
        )
        if storage.on_disk:
            del data
            prepared = prepare(paths, model, store=store, specs=specs, run_id=run_id, notify=notify)
            try:
                return train_distributed(
                    model,
                    prepared,
                    store=store,
                    on_disk=on_disk,
                    memory_budget=memory_budget,
                    algo=algo,
                    params=params,
                    threads=threads,
                    catalog=catalog,
                    params_source=params_source,
                    init=init,
                    parent_version=parent_version,
                )
            finally:
                cleanup(prepared, store)
    return train_tables(
        model,
        data,
        algo=algo,
        params=params,
        threads=threads,
        seed=SEED,
        catalog=catalog,
        params_source=params_source,
        on_disk=on_disk,
        memory_budget=memory_budget,
        init=init,
        parent_version=parent_version,
    )


def train_distributed(
    model: str,
    prepared: Any,
    *,
    store: ArtifactStore,
    on_disk: bool = False,
    memory_budget: int | None = None,
    algo: str,
    params: dict[str, Any],
    threads: int,
    catalog: Catalog | None = None,
    params_source: str | None = None,
    init: Any | None = None,
    parent_version: str | None = None,
) -> TrainedModel:
    """`train` from the window prepared into shards (`control.scale.prepare.Prepared`, by
    Ray tasks or in this process): the same split (VALID_FRACTION, SEED) over the same row
    order, so the same model; out of core with `on_disk` or above `memory_budget`. The
    caller removes the shards."""
    from control.scale.train import train_prepared  # noqa: PLC0415

    del store  # the shards are local (a cache of remote ones): nothing more to fetch
    return train_prepared(
        model,
        prepared,
        valid_fraction=VALID_FRACTION,
        algo=algo,
        params=params,
        threads=threads,
        seed=SEED,
        catalog=catalog,
        params_source=params_source,
        init=init,
        parent_version=parent_version,
        on_disk=on_disk,
        memory_budget=memory_budget,
    )


def register(
    registry: Registry,
    store: ArtifactStore,
    trained: TrainedModel,
    *,
    key: str,
    extra: dict[str, Any],
) -> Version:
    """Upload model and manifest under the key's stable artifact name, then register."""
    return publish(trained, registry, store, key=key, extra=extra)
