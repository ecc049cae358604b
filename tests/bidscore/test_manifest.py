"""The typed manifest: every schema written so far reads back, unknown keys survive."""

from __future__ import annotations

import json

from bidscore.manifest import SCHEMA_VERSION, Manifest

# What `control train` wrote before the manifest was typed (schema 1, no `schema` key).
SCHEMA_1 = {
    "model": "ctr",
    "version": 3,
    "algorithm": "ffm",
    "params": {"algo": "ffm", "k": 4, "eta": 0.2, "best_epoch": 7},
    "fingerprint": "ab" * 32,
    "checksum": "0123456789abcdef",
    "sha256": "cd" * 32,
    "key": "ctr/x.model",
    "idempotency_key": None,
    "artifact_uri": "file:///a/ctr/x.model",
    "spec": {"seed": 1},
    "metrics": {"logloss": 0.12, "auc": 0.74},
    "profile": {"app_id": {"rows": 10}},
    "data": {"rows": 10},
    "code_version": "0.1.0",
    "created_at": "2026-11-20T00:00:00Z",
    "comparison": {"holdout": {}},
    "retrain": {"run_id": "r1"},
    "team_note": "kept as is",
}


def test_schema_1_reads_with_the_algorithm_once() -> None:
    manifest = Manifest.from_json(SCHEMA_1)
    assert manifest.algorithm == "ffm"
    assert "algo" not in manifest.params
    assert manifest.params["k"] == 4
    assert manifest.version == "3"
    assert manifest.metric("auc") == 0.74
    assert manifest.metric("ne") is None
    assert manifest.extra == {"team_note": "kept as is"}
    assert manifest.schema == SCHEMA_VERSION


def test_schema_1_without_algorithm_takes_it_from_params() -> None:
    old = dict(SCHEMA_1)
    del old["algorithm"]
    assert Manifest.from_json(old).algorithm == "ffm"


def test_round_trip_through_json_text() -> None:
    manifest = Manifest.from_json(SCHEMA_1).replace(version="4")
    again = Manifest.loads(manifest.dumps())
    assert again == manifest
    body = json.loads(manifest.dumps())
    assert body["team_note"] == "kept as is"
    assert body["schema"] == SCHEMA_VERSION
    assert "extra" not in body


def test_a_partial_manifest_reads_with_defaults() -> None:
    manifest = Manifest.from_json({"metrics": {"auc": 0.7}})
    assert (manifest.model, manifest.checksum, manifest.params) == ("", "", {})


def test_parent_version_is_typed_and_old_manifests_read_without_it() -> None:
    old = Manifest.from_json({"model": "ctr", "algorithm": "lr", "schema": 2})
    assert old.parent_version is None
    assert "parent_version" not in old.extra
    warm = Manifest.loads(old.replace(parent_version="4").dumps())
    assert warm.parent_version == "4"
    assert warm.to_json()["parent_version"] == "4"
