"""The registry contract, run against both backends: a real SQLite file and DynamoDB on the
moto server (see tests/conftest.py `backends`)."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bidscore.errors import InputError
from bidscore.manifest import Manifest
from bidscore.registry import (
    AliasMove,
    ConflictError,
    NotFoundError,
    Registry,
    RegistryError,
    effective_stack,
    open_registry,
)
from tests.waiting import FakeClock


@pytest.fixture
def registry(backends: tuple[str, str]) -> Registry:
    return open_registry(backends[0])


def _register(registry: Registry, model: str, n: int) -> list[str]:
    return [
        registry.register_version(
            model, Manifest(metrics={"auc": 0.7 + i / 100}), f"file:///a/{i}"
        ).version
        for i in range(n)
    ]


def test_versions_are_numbered_per_model(registry: Registry) -> None:
    assert _register(registry, "ctr", 3) == ["1", "2", "3"]
    assert _register(registry, "cvr", 1) == ["1"]
    v2 = registry.get_version("ctr", "2")
    assert v2.manifest == Manifest(
        model="ctr", version="2", artifact_uri="file:///a/1", metrics={"auc": 0.71}
    )
    assert v2.artifact_uri == "file:///a/1"
    assert [(v.model, v.version) for v in registry.list_versions()] == [
        ("ctr", "1"),
        ("ctr", "2"),
        ("ctr", "3"),
        ("cvr", "1"),
    ]
    assert [v.version for v in registry.list_versions("cvr")] == ["1"]
    assert registry.list_versions("nope") == []


def test_idempotency_key_returns_the_existing_version(registry: Registry) -> None:
    first = registry.register_version(
        "ctr", Manifest.from_json({"a": 1}), "file:///a/1", key="run-42"
    )
    again = registry.register_version(
        "ctr", Manifest.from_json({"a": 2}), "file:///a/2", key="run-42"
    )
    assert again.version == first.version == "1"
    assert again.manifest.extra["a"] == 1
    assert registry.find_version("ctr", "run-42") == first
    assert registry.find_version("ctr", "other") is None
    assert len(registry.list_versions("ctr")) == 1


def test_unknown_model_and_version_are_named(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="unknown model 'ctr'"):
        registry.get_version("ctr", "1")
    _register(registry, "ctr", 1)
    with pytest.raises(NotFoundError, match="'ctr' has no version '7'"):
        registry.get_version("ctr", "7")
    with pytest.raises(NotFoundError, match="no version 'latest'"):
        registry.get_version("ctr", "latest")


def test_invalid_names_are_refused(registry: Registry) -> None:
    with pytest.raises(InputError, match="invalid model name"):
        registry.register_version("ctr#x", Manifest.from_json({}), "file:///a")
    _register(registry, "ctr", 1)
    with pytest.raises(InputError, match="invalid alias name"):
        registry.set_alias("ctr", "prod/x", "1", expected_generation=0, actor="t", reason="")


def test_alias_compare_and_set_and_history(registry: Registry) -> None:
    _register(registry, "ctr", 3)
    assert registry.get_alias("ctr", "production") is None
    first = registry.set_alias(
        "ctr", "production", "1", expected_generation=0, actor="ann", reason="go"
    )
    assert (first.version, first.generation, first.updated_by) == ("1", 1, "ann")
    with pytest.raises(ConflictError, match="expected generation 0, it is now 1"):
        registry.set_alias("ctr", "production", "2", expected_generation=0, actor="bob", reason="")
    second = registry.set_alias(
        "ctr", "production", "2", expected_generation=1, actor="bob", reason="b"
    )
    assert registry.get_alias("ctr", "production") == second
    history = registry.alias_history("ctr", "production")
    assert [(m.generation, m.from_version, m.to_version, m.actor, m.kind) for m in history] == [
        (1, None, "1", "ann", "promote"),
        (2, "1", "2", "bob", "promote"),
    ]
    # Aliases are independent of each other, including by name prefix.
    registry.set_alias("ctr", "prod", "3", expected_generation=0, actor="c", reason="")
    assert len(registry.alias_history("ctr", "production")) == 2
    assert [(a.alias, a.version) for a in registry.list_aliases("ctr")] == [
        ("prod", "3"),
        ("production", "2"),
    ]
    assert registry.list_aliases("cvr") == []
    assert registry.get_alias("ctr", "production") == second


def test_alias_to_unknown_version_changes_nothing(registry: Registry) -> None:
    _register(registry, "ctr", 1)
    registry.set_alias("ctr", "production", "1", expected_generation=0, actor="a", reason="")
    with pytest.raises(NotFoundError, match="no version '9'"):
        registry.set_alias("ctr", "production", "9", expected_generation=1, actor="a", reason="")
    alias = registry.get_alias("ctr", "production")
    assert alias is not None
    assert (alias.version, alias.generation) == ("1", 1)
    assert len(registry.alias_history("ctr", "production")) == 1


def test_concurrent_alias_moves_exactly_one_wins(registry: Registry) -> None:
    _register(registry, "ctr", 9)
    registry.set_alias("ctr", "production", "1", expected_generation=0, actor="seed", reason="")
    barrier = threading.Barrier(8)

    def attempt(version: str) -> str:
        barrier.wait()
        try:
            registry.set_alias(
                "ctr", "production", version, expected_generation=1, actor=f"op{version}", reason=""
            )
        except ConflictError:
            return "conflict"
        return "won"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, [str(v) for v in range(2, 10)]))
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
    winner = str(outcomes.index("won") + 2)
    alias = registry.get_alias("ctr", "production")
    assert alias is not None
    assert (alias.version, alias.generation) == (winner, 2)
    history = registry.alias_history("ctr", "production")
    assert [(m.generation, m.from_version, m.to_version) for m in history] == [
        (1, None, "1"),
        (2, "1", winner),
    ]


def test_concurrent_registrations_get_distinct_versions(registry: Registry) -> None:
    barrier = threading.Barrier(6)

    def register(i: int) -> str:
        barrier.wait()
        return registry.register_version(
            "ctr", Manifest.from_json({"i": i}), f"file:///a/{i}"
        ).version

    with ThreadPoolExecutor(6) as pool:
        versions = list(pool.map(register, range(6)))
    assert sorted(versions, key=int) == ["1", "2", "3", "4", "5", "6"]
    by_version = {v.version: v.manifest.extra["i"] for v in registry.list_versions("ctr")}
    assert sorted(by_version.values()) == list(range(6))


def test_locks_expire_and_belong_to_their_owner(backends: tuple[str, str]) -> None:
    clock = FakeClock()
    registry = open_registry(backends[0], clock=clock)
    assert registry.acquire_lock("retrain-ctr", "a", ttl_seconds=60)
    assert not registry.acquire_lock("retrain-ctr", "b", ttl_seconds=60)
    assert registry.acquire_lock("retrain-ctr", "a", ttl_seconds=10)  # renewal by the owner
    registry.release_lock("retrain-ctr", "b")  # not b's: no effect
    clock.advance(9)
    assert not registry.acquire_lock("retrain-ctr", "b", ttl_seconds=60)
    clock.advance(2)
    assert registry.acquire_lock("retrain-ctr", "b", ttl_seconds=60)  # stale: taken over
    registry.release_lock("retrain-ctr", "b")
    assert registry.acquire_lock("retrain-ctr", "c", ttl_seconds=60)


def test_run_records(registry: Registry) -> None:
    registry.put_run({"run_id": "r2", "model": "ctr", "status": "running"})
    registry.put_run({"run_id": "r1", "model": "ctr", "status": "running"})
    registry.put_run({"run_id": "r3", "model": "cvr", "status": "done"})
    registry.put_run({"run_id": "r2", "model": "ctr", "status": "done", "nested": {"x": [1.5]}})
    assert registry.get_run("r2") == {
        "run_id": "r2",
        "model": "ctr",
        "status": "done",
        "nested": {"x": [1.5]},
    }
    assert [r["run_id"] for r in registry.list_runs("ctr")] == ["r2", "r1"]
    assert [r["status"] for r in registry.list_runs("ctr")] == ["done", "running"]
    with pytest.raises(NotFoundError, match="unknown run 'r9'"):
        registry.get_run("r9")
    with pytest.raises(InputError, match="run_id"):
        registry.put_run({"model": "ctr"})


def test_sqlite_registry_is_a_wal_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "registry.db"
    open_registry(f"sqlite://{path}").register_version("ctr", Manifest.from_json({}), "file:///a")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # A second handle (as another process would open it) sees the same data.
    assert open_registry(f"sqlite:///{path}").get_version("ctr", "1").artifact_uri == "file:///a"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://x", "unsupported registry URL"),
        ("sqlite:///dev/null/registry.db", "registry"),
        ("sqlite://", "names no file"),
    ],
)
def test_bad_registry_urls(url: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        open_registry(url)


@pytest.mark.aws
def test_dynamodb_missing_table_and_unreachable_endpoint(moto_server: str, free_port) -> None:
    with pytest.raises(RegistryError, match=r"does not exist .*create=1"):
        open_registry(f"dynamodb://no-such-table?region=us-east-1&endpoint_url={moto_server}")
    started = time.monotonic()
    with pytest.raises(RegistryError, match="unreachable"):
        open_registry(f"dynamodb://t?region=us-east-1&endpoint_url=http://127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 10


def test_effective_stack_walks_back_through_rollbacks() -> None:
    def move(generation: int, to: str, kind: str = "promote") -> AliasMove:
        return AliasMove("ctr", "production", generation, None, to, "t", "", "", kind)

    moves = [move(1, "1"), move(2, "2"), move(3, "3"), move(4, "2", "rollback")]
    assert effective_stack(moves) == ["1", "2"]
    assert effective_stack([*moves, move(5, "1", "rollback")]) == ["1"]
    assert effective_stack([*moves, move(5, "4")]) == ["1", "2", "4"]
    assert effective_stack(list(reversed(moves))) == ["1", "2"]


def test_saved_params_are_one_record_per_model(registry: Registry) -> None:
    assert registry.get_params("ctr") is None
    first = {"algorithm": "ffm", "params": {"k": 8, "eta": 0.05}, "study": {"trials": 3}}
    registry.put_params("ctr", first)
    assert registry.get_params("ctr") == first
    second = first | {"params": {"k": 12, "eta": 0.1}}
    registry.put_params("ctr", second)
    assert registry.get_params("ctr") == second
    assert registry.get_params("cvr") is None
    # The record lives beside the model's versions without becoming one.
    assert registry.list_versions("ctr") == []
    with pytest.raises(InputError):
        registry.put_params("bad name", first)
