"""Fixtures of the control-plane suites: real trained models on small generated logs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bidscore.registry import Registry, Version
from bidscore.store import ArtifactStore
from control.training import TrainedModel, load_data, publish, train_tables

# Few epochs: these fixtures need real model files, not good models.
QUICK = {"epochs": 3}


@pytest.fixture(scope="session")
def trained_ctr(small_logs: Path) -> TrainedModel:
    """A ctr model trained once per session on `small_logs` (not registered). It is an LR:
    the ctr spec's FFM file is ~105 MB (2^18 x 25 fields x k=4), needlessly heavy for tests of
    the registry and stores; the fingerprint, which promotion checks, is the same."""
    data = load_data("ctr", [small_logs], seed=1)
    return train_tables("ctr", data, algo="lr", params=QUICK, seed=1)


@pytest.fixture(scope="session")
def medium_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30,000 log rows: enough clicked rows (~1,000) with conversions for cvr."""
    from control.datagen import write_dataset  # noqa: PLC0415 -- only suites that need data

    path = tmp_path_factory.mktemp("logs") / "medium.parquet"
    write_dataset(path, rows=30_000, seed=8)
    return path


# Where claimed versions say they were trained: absent, so `control promote` cannot re-read
# the rows and judges on the claimed (manifest) metrics.
ABSENT_LOGS = "/nonexistent/claimed-logs.parquet"


def _publish_claiming(
    trained: TrainedModel, registry: Registry, store: ArtifactStore, **metrics: Any
) -> Version:
    claimed = trained.metrics.to_dict() | metrics
    data = trained.data | {"paths": [ABSENT_LOGS], "valid_paths": []}
    return publish(trained, registry, store, extra={"metrics": claimed, "data": data})


@pytest.fixture
def publish_claiming() -> Callable[..., Version]:
    """`publish_claiming(trained, registry, store, logloss=.., auc=..)`: publish a new version
    whose manifest claims the given metrics and logs that no longer exist (without rows to
    score both versions on, the gates compare manifests, so tests choose the numbers while the
    artifact stays real)."""
    return _publish_claiming
