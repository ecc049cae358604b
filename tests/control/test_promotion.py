"""Promotion and rollback with real model files on both backend pairs: integrity checks that
`force` cannot skip, metric gates with both values in the message, compare-and-set races."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import rust_core
from bidscore.errors import ConflictError, IntegrityError, NotFoundError
from bidscore.manifest import Manifest
from bidscore.registry import Registry, Version, open_registry
from bidscore.store import ArtifactStore, open_store
from control.errors import GateError, UnknownAliasError
from control.promotion import (
    AUC_TOLERANCE,
    LOGLOSS_TOLERANCE,
    RowSource,
    RowsUnavailable,
    promote,
    rollback,
)
from control.rescoring import candidate_validation_rows, rows_from_logs
from control.training import publish
from features.bid import SPECS
from features.tokenize import tokenize_table


@pytest.fixture
def backend(backends: tuple[str, str]) -> tuple[Registry, ArtifactStore]:
    return open_registry(backends[0]), open_store(backends[1])


def _corrupt(store: ArtifactStore, version: Version, tmp_path: Path) -> None:
    """Flip one payload byte of the stored model file, in place (same key)."""
    local = tmp_path / "corrupt.bin"
    store.get(version.artifact_uri, local)
    data = bytearray(local.read_bytes())
    data[200] ^= 0xFF
    local.write_bytes(bytes(data))
    store.put(local, version.manifest.key)


def test_first_promotion_has_only_the_base_rate_gate_and_records_history(
    trained_ctr, backend
) -> None:
    registry, store = backend
    v1 = publish(trained_ctr, registry, store)
    result = promote(registry, store, "ctr", v1.version, actor="ann")
    assert (result.alias.version, result.alias.generation, result.previous) == ("1", 1, None)
    assert [(g.name, g.passed) for g in result.gates] == [("base rate", True)]
    [move] = registry.alias_history("ctr", "production")
    assert (move.from_version, move.to_version, move.actor, move.kind) == (
        None,
        "1",
        "ann",
        "promote",
    )


def test_metric_gates_name_the_gate_and_both_values(trained_ctr, backend, publish_claiming) -> None:
    registry, store = backend
    publish_claiming(trained_ctr, registry, store, logloss=0.40, auc=0.75)
    promote(registry, store, "ctr", "1", actor="t")
    # Within tolerance on both: passes.
    publish_claiming(
        trained_ctr,
        registry,
        store,
        logloss=0.40 * (1 + LOGLOSS_TOLERANCE / 2),
        auc=0.75 - AUC_TOLERANCE / 2,
    )
    result = promote(registry, store, "ctr", "2", actor="t")
    assert [(g.name, g.passed) for g in result.gates] == [
        ("base rate", True),
        ("logloss", True),
        ("auc", True),
    ]
    # Worse logloss: refused, with both values.
    publish_claiming(trained_ctr, registry, store, logloss=0.45, auc=0.80)
    with pytest.raises(GateError, match=r"gate logloss: logloss v3 0\.450000 vs v2 0\.401000"):
        promote(registry, store, "ctr", "3", actor="t")
    # Worse AUC: refused.
    publish_claiming(trained_ctr, registry, store, logloss=0.39, auc=0.70)
    with pytest.raises(GateError, match=r"gate auc: auc v4 0\.700000 vs v2 0\.747500"):
        promote(registry, store, "ctr", "4", actor="t")
    alias = registry.get_alias("ctr", "production")
    assert alias is not None
    assert alias.version == "2"
    # --force skips the metric gates.
    forced = promote(registry, store, "ctr", "3", actor="t", force=True)
    assert forced.alias.version == "3"
    assert forced.forced


def test_corrupted_artifact_is_refused_even_with_force(
    trained_ctr, backend, tmp_path: Path
) -> None:
    registry, store = backend
    v1 = publish(trained_ctr, registry, store)
    v2 = publish(trained_ctr, registry, store)
    promote(registry, store, "ctr", v1.version, actor="t")
    _corrupt(store, v2, tmp_path)
    for force in (False, True):
        with pytest.raises(IntegrityError, match="checksum mismatch"):
            promote(registry, store, "ctr", v2.version, actor="t", force=force)
    alias = registry.get_alias("ctr", "production")
    assert alias is not None
    assert (alias.version, alias.generation) == ("1", 1)


def test_model_trained_on_other_features_is_refused(trained_ctr, backend) -> None:
    registry, store = backend
    rows = tokenize_table(pq.read_table(trained_ctr.data["paths"][0]), SPECS["ctr"], "click")
    # A real model file whose header carries another spec's fingerprint, with a manifest
    # that agrees with the file: only the comparison with the feature code can catch it.
    other = rust_core.train_lr(
        rows, epochs=1, bits=SPECS["ctr"].bits, fingerprint=SPECS["cvr"].fingerprint
    )
    version = publish(dataclasses.replace(trained_ctr, model=other), registry, store)
    with pytest.raises(IntegrityError, match="feature spec mismatch"):
        promote(registry, store, "ctr", version.version, actor="t", force=True)
    assert registry.get_alias("ctr", "production") is None


def test_unknown_version_and_same_version(trained_ctr, backend) -> None:
    registry, store = backend
    with pytest.raises(NotFoundError, match="unknown model 'ctr'"):
        promote(registry, store, "ctr", "1", actor="t")
    publish(trained_ctr, registry, store)
    with pytest.raises(NotFoundError, match="no version '5'"):
        promote(registry, store, "ctr", "5", actor="t")
    promote(registry, store, "ctr", "1", actor="t")
    with pytest.raises(Exception, match="already points at version 1"):
        promote(registry, store, "ctr", "1", actor="t")


def test_eight_concurrent_promotions_one_wins(trained_ctr, backend) -> None:
    registry, store = backend
    for _ in range(9):
        publish(trained_ctr, registry, store)
    promote(registry, store, "ctr", "1", actor="seed")
    barrier = threading.Barrier(8)

    def attempt(version: str) -> str:
        barrier.wait()
        try:
            promote(registry, store, "ctr", version, actor=f"op{version}", expected_version="1")
        except ConflictError:
            return "conflict"
        return "won"

    with ThreadPoolExecutor(8) as pool:
        outcomes = dict(
            zip(range(2, 10), pool.map(attempt, [str(v) for v in range(2, 10)]), strict=True)
        )
    winners = [v for v, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1
    assert sorted(outcomes.values()).count("conflict") == 7
    history = registry.alias_history("ctr", "production")
    assert [(m.generation, m.from_version, m.to_version) for m in history] == [
        (1, None, "1"),
        (2, "1", str(winners[0])),
    ]


def test_rollback_walks_back_through_promotions(trained_ctr, backend, tmp_path: Path) -> None:
    registry, store = backend
    for _ in range(3):
        publish(trained_ctr, registry, store)
    with pytest.raises(NotFoundError, match="never been set"):
        rollback(registry, store, "ctr", actor="t")
    for v in ("1", "2", "3"):
        promote(registry, store, "ctr", v, actor="t", force=True)
    assert rollback(registry, store, "ctr", actor="t").alias.version == "2"
    assert rollback(registry, store, "ctr", actor="t").alias.version == "1"
    with pytest.raises(NotFoundError, match="no earlier version"):
        rollback(registry, store, "ctr", actor="t")
    history = registry.alias_history("ctr", "production")
    assert [(m.kind, m.from_version, m.to_version) for m in history] == [
        ("promote", None, "1"),
        ("promote", "1", "2"),
        ("promote", "2", "3"),
        ("rollback", "3", "2"),
        ("rollback", "2", "1"),
    ]
    # A rollback target whose artifact got corrupted is refused too.
    promote(registry, store, "ctr", "3", actor="t", force=True)
    _corrupt(store, registry.get_version("ctr", "1"), tmp_path)
    with pytest.raises(IntegrityError):
        rollback(registry, store, "ctr", actor="t")
    assert registry.get_alias("ctr", "production").version == "3"


@pytest.mark.parametrize(
    ("lie", "message"),
    [
        ({"checksum": "0123456789abcdef"}, "model payload"),
        ({"fingerprint": "ab" * 32}, "!= manifest fingerprint"),
        ({"sha256": "0" * 64}, "file sha256"),
    ],
)
def test_manifest_that_disagrees_with_its_file_is_refused(
    trained_ctr, tmp_path: Path, lie: dict[str, str], message: str
) -> None:
    registry = open_registry(f"sqlite://{tmp_path / 'r.db'}")
    store = open_store(f"file://{tmp_path / 'a'}")
    version = publish(trained_ctr, registry, store)
    # Register the same (intact) artifact under a manifest that lies about it.
    liar = registry.register_version(
        "ctr", Manifest.from_json(version.manifest.to_json() | lie), version.artifact_uri
    )
    with pytest.raises(IntegrityError, match=message):
        promote(registry, store, "ctr", liar.version, actor="t", force=True)


# --- the base-rate gate, forced overrides, and both versions on the same rows ---------------


def test_a_first_version_must_beat_the_base_rate(trained_ctr, backend, publish_claiming) -> None:
    registry, store = backend
    publish_claiming(trained_ctr, registry, store, ne=1.02)
    with pytest.raises(GateError, match=r"gate base rate: ne v1 1\.0200 \(must be < 1"):
        promote(registry, store, "ctr", "1", actor="t")
    assert registry.get_alias("ctr", "production") is None
    # --force promotes, and the history says which gate it went past.
    forced = promote(registry, store, "ctr", "1", actor="t", force=True, reason="bootstrap")
    assert forced.forced
    assert [g.name for g in forced.overridden] == ["base rate"]
    [move] = registry.alias_history("ctr", "production")
    assert move.reason.startswith("bootstrap; forced past base rate gate (ne v1 1.0200")


def test_a_forced_promotion_that_passes_records_no_override(
    trained_ctr, backend, publish_claiming
) -> None:
    registry, store = backend
    publish_claiming(trained_ctr, registry, store, ne=0.9)
    assert promote(registry, store, "ctr", "1", actor="t", force=True).overridden == []
    assert registry.alias_history("ctr", "production")[0].reason == "promote --force"


def _fixed_rows(metrics_by_version: dict[str, dict[str, float]]) -> RowSource:
    def rescore(version: Version, _model: rust_core.Model) -> dict[str, float]:
        return metrics_by_version[version.version]

    return RowSource(rescore, "the same fixed rows")


def test_relative_gates_compare_both_versions_on_the_same_rows(
    trained_ctr, backend, publish_claiming
) -> None:
    registry, store = backend
    publish_claiming(trained_ctr, registry, store, logloss=0.40, auc=0.75)
    promote(registry, store, "ctr", "1", actor="t")
    # The manifests say v2 is much worse, but scored on the same rows it is better: it passes.
    publish_claiming(trained_ctr, registry, store, logloss=0.60, auc=0.60)
    same = {
        "1": {"logloss": 0.30, "auc": 0.70, "ne": 0.9},
        "2": {"logloss": 0.29, "auc": 0.71, "ne": 0.88},
    }
    result = promote(registry, store, "ctr", "2", actor="t", rows=_fixed_rows(same))
    assert result.evaluation is not None
    assert result.evaluation.same_rows
    assert (result.evaluation.candidate, result.evaluation.current) == (same["2"], same["1"])
    assert [(g.name, g.passed) for g in result.gates] == [
        ("base rate", True),
        ("logloss", True),
        ("auc", True),
    ]
    # And the other way round: fine manifests, worse on the same rows: refused with both values.
    publish_claiming(trained_ctr, registry, store, logloss=0.10, auc=0.95)
    worse = same | {"3": {"logloss": 0.35, "auc": 0.71, "ne": 0.95}}
    with pytest.raises(GateError, match=r"logloss v3 0\.350000 vs v2 0\.290000"):
        promote(registry, store, "ctr", "3", actor="t", rows=_fixed_rows(worse))


def test_without_common_rows_the_manifests_are_used_and_that_is_said(
    trained_ctr, backend, publish_claiming
) -> None:
    registry, store = backend
    publish_claiming(trained_ctr, registry, store, logloss=0.40, auc=0.75)
    promote(registry, store, "ctr", "1", actor="t")
    publish_claiming(trained_ctr, registry, store, logloss=0.39, auc=0.76)

    def unreadable(_version: Version, _model: rust_core.Model) -> dict[str, float]:
        raise RowsUnavailable("the candidate's logs are not readable here (gone.parquet)")

    result = promote(registry, store, "ctr", "2", actor="t", rows=RowSource(unreadable, "x"))
    assert result.evaluation is not None
    assert not result.evaluation.same_rows
    assert "gone.parquet" in result.evaluation.rows
    assert "different rows" in result.evaluation.rows
    assert result.evaluation.candidate["logloss"] == 0.39


def test_both_versions_scored_on_real_logs(trained_ctr, backend, medium_logs: Path) -> None:
    registry, store = backend
    publish(trained_ctr, registry, store)
    promote(registry, store, "ctr", "1", actor="t")
    publish(trained_ctr, registry, store)
    result = promote(
        registry, store, "ctr", "2", actor="t", rows=rows_from_logs("ctr", [medium_logs])
    )
    evaluation = result.evaluation
    assert evaluation is not None
    assert evaluation.same_rows
    assert evaluation.current is not None
    assert evaluation.candidate["rows"] == evaluation.current["rows"] == 30_000
    # The same model file scored on the same rows: the same numbers.
    assert evaluation.candidate["logloss"] == pytest.approx(evaluation.current["logloss"])


def test_the_candidates_validation_rows_are_re_read(trained_ctr, backend) -> None:
    registry, store = backend
    publish(trained_ctr, registry, store)
    promote(registry, store, "ctr", "1", actor="t")
    v2 = publish(trained_ctr, registry, store)
    result = promote(registry, store, "ctr", "2", actor="t", rows=candidate_validation_rows(v2))
    evaluation = result.evaluation
    assert evaluation is not None
    assert evaluation.same_rows
    assert "validation rows, re-read from" in evaluation.rows
    # The split is reproduced from the recorded fraction and seed: the training metrics again.
    assert evaluation.candidate["rows"] == trained_ctr.metrics.rows
    assert evaluation.candidate["logloss"] == pytest.approx(trained_ctr.metrics.logloss)


# --- aliases that do not exist ------------------------------------------------------------


def test_an_alias_the_model_lacks_needs_create_alias(trained_ctr, backend) -> None:
    registry, store = backend
    publish(trained_ctr, registry, store)
    publish(trained_ctr, registry, store)
    # The default alias is created by a first promotion without ceremony.
    promote(registry, store, "ctr", "1", actor="t")
    with pytest.raises(UnknownAliasError) as refused:
        promote(registry, store, "ctr", "2", alias="prodution", actor="t")
    message = str(refused.value)
    assert "ctr has no alias 'prodution' (its aliases: production)" in message
    assert "did you mean 'production'?" in message
    assert "--create-alias" in message
    assert registry.get_alias("ctr", "prodution") is None
    moved = promote(registry, store, "ctr", "2", alias="canary", actor="t", create_alias=True)
    assert (moved.alias.alias, moved.alias.version) == ("canary", "2")
    # Once it exists, no flag is needed, and it is offered as a suggestion.
    promote(registry, store, "ctr", "1", alias="canary", actor="t", force=True)
    with pytest.raises(
        UnknownAliasError, match=r"its aliases: canary, production\); did you mean 'canary'"
    ):
        promote(registry, store, "ctr", "2", alias="canery", actor="t")
    with pytest.raises(UnknownAliasError, match=r"no alias 'blue'.*pass --create-alias"):
        promote(registry, store, "ctr", "2", alias="blue", actor="t")
