"""Fixtures of the scoring-server suite (helpers live in serve_harness.py).

- `trained` (session): small ctr (FFM), cvr (LR) and win (LR) models, two versions each,
  trained through `features.tokenize` and `rust_core` on generated logs.
- `published`: a fresh SQLite registry + file store with those versions registered and
  `production` pointing at version 1 of each.
- `start_server(...)`: starts a server, waits until health says SERVING, and kills it at the
  end of the test whatever happens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import rust_core
from control import datagen
from tests.pyserver import serve_specs
from tests.pyserver.serve_harness import (
    MODELS,
    Published,
    ServerFactory,
    TrainedModel,
    publish_trained,
    train,
)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[TrainedModel]]:
    """{model name: [version 1, version 2]}: the two versions score differently."""
    out = tmp_path_factory.mktemp("trained")
    table = datagen.generate(3000, seed=7)
    result: dict[str, list[TrainedModel]] = {}
    for name in MODELS:
        spec = serve_specs.SPECS[name]
        result[name] = []
        for n, (seed, epochs) in enumerate([(1, 2), (2, 4)], start=1):
            model = train(spec, table, seed, epochs)
            path = out / f"{name}-{n}.model"
            model.save(str(path))
            result[name].append(TrainedModel(name, path, rust_core.load_model(str(path))))
    return result


@pytest.fixture
def published(tmp_path: Path, trained: dict[str, list[TrainedModel]]) -> Published:
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    store_url = f"file://{tmp_path / 'artifacts'}"
    return publish_trained(registry_url, store_url, trained)


@pytest.fixture
def start_server(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path, free_port)
    yield factory
    factory.close()
