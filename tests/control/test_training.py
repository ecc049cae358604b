"""Training end to end through the library: real logs, real rust_core, real stores."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import rust_core
from bidscore.manifest import file_sha256
from bidscore.registry import open_registry
from bidscore.store import open_store
from control.errors import TrainingInputError
from control.training import (
    FFM_DEFAULTS,
    hyper_parameters,
    load_data,
    publish,
    train_tables,
)
from features.readers import LogReadError


def test_ctr_trains_an_ffm_with_libffm_defaults(small_logs: Path) -> None:
    trained = train_tables("ctr", load_data("ctr", [small_logs]), params={"epochs": 2})
    m = trained.metrics
    assert trained.model.algorithm == "ffm"
    assert trained.manifest().algorithm == "ffm"
    assert "algo" not in trained.params
    assert {k: trained.params[k] for k in ("k", "eta", "l2", "normalize")} == {
        "k": 4,
        "eta": 0.2,
        "l2": 2e-5,
        "normalize": True,
    }
    assert 0 < m.logloss < 1
    assert 0 <= m.auc <= 1
    assert m.rows == trained.data["valid_rows"]
    assert trained.data["train_rows"] + m.rows == 4000
    assert trained.model.fingerprint == trained.spec.fingerprint
    assert set(trained.profile) >= {"app_id", "bid_floor", "campaign_id"}


def test_cvr_trains_lr_on_clicked_rows_only(medium_logs: Path) -> None:
    clicks = int(pc.sum(pq.read_table(medium_logs)["click"]).as_py())
    data = load_data("cvr", [medium_logs], seed=0, valid_fraction=0.3)
    assert data.train.num_rows + data.valid.num_rows == clicks
    trained = train_tables("cvr", data, params={"epochs": 2})
    assert trained.model.algorithm == "lr"
    assert trained.data["label"] == "conversion"
    assert trained.data["where"] == "click"


def test_defaults_and_overrides() -> None:
    assert hyper_parameters("ffm") == FFM_DEFAULTS
    assert hyper_parameters("ffm", {"eta": 0.1, "k": None})["eta"] == 0.1
    with pytest.raises(TrainingInputError, match="lr has no hyper-parameter 'k'"):
        hyper_parameters("lr", {"k": 8})
    with pytest.raises(TrainingInputError, match="epochs must be >= 1"):
        hyper_parameters("ffm", {"epochs": 0})
    with pytest.raises(TrainingInputError, match="unknown algorithm 'gbdt'"):
        hyper_parameters("gbdt")


def test_publish_uploads_model_and_manifest_then_registers(
    trained_ctr, backends: tuple[str, str], tmp_path: Path
) -> None:
    registry, store = open_registry(backends[0]), open_store(backends[1])
    version = publish(trained_ctr, registry, store)
    assert version.version == "1"
    key = version.manifest.key
    assert sorted(store.list_keys()) == [key, key + ".json"]
    local = tmp_path / "model.bin"
    store.get(version.artifact_uri, local)
    assert file_sha256(local) == version.manifest.sha256
    assert rust_core.load_model(local).checksum == version.manifest.checksum
    store.get(store.uri_for(key + ".json"), tmp_path / "manifest.json")
    stored = json.loads((tmp_path / "manifest.json").read_text())
    assert stored["version"] is None  # handed out by the registry after the uploads
    assert stored["sha256"] == version.manifest.sha256
    assert version.manifest.version == "1"
    assert version.manifest.metrics["auc"] == trained_ctr.metrics.auc
    manifest = version.manifest
    assert manifest.algorithm == trained_ctr.model.algorithm
    assert manifest.code_version
    assert all(
        (manifest.params, manifest.fingerprint, manifest.spec, manifest.profile, manifest.data)
    )
    assert "algo" not in stored["params"]  # schema 2 records the algorithm once


def test_publish_with_a_key_is_idempotent(trained_ctr, backends: tuple[str, str]) -> None:
    registry, store = open_registry(backends[0]), open_store(backends[1])
    first = publish(trained_ctr, registry, store, key="ctr-2026-11-01-abc")
    again = publish(trained_ctr, registry, store, key="ctr-2026-11-01-abc")
    assert again.version == first.version == "1"
    assert len(store.list_keys()) == 2  # one model file, one manifest


class _FailingUpload:
    """An observer whose byte counter fails mid-upload, as a dropped connection would."""

    def stage(self, name: str) -> None:
        pass

    def epoch(self, *args: object) -> None:
        pass

    def transfer(self, name: str, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        raise RuntimeError("connection reset during upload")


def test_interrupted_upload_registers_nothing(trained_ctr, backends: tuple[str, str]) -> None:
    registry, store = open_registry(backends[0]), open_store(backends[1])
    with pytest.raises(RuntimeError, match="connection reset"):
        publish(trained_ctr, registry, store, observer=_FailingUpload())
    assert registry.list_versions() == []
    assert store.list_keys() == []


def test_failed_manifest_upload_removes_the_model(trained_ctr, tmp_path: Path) -> None:
    registry = open_registry(f"sqlite://{tmp_path / 'r.db'}")
    store = open_store(f"file://{tmp_path / 'store'}")
    real_put = store.put

    def put(local_path, key, progress=None):  # the manifest upload fails
        if key.endswith(".json"):
            raise OSError("disk full")
        return real_put(local_path, key, progress)

    store.put = put  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        publish(trained_ctr, registry, store)
    assert registry.list_versions() == []
    assert store.list_keys() == []


def test_downsampled_logs_train_a_calibrated_model(tmp_path: Path) -> None:
    from control.datagen import write_dataset  # noqa: PLC0415

    path = tmp_path / "down.parquet"
    write_dataset(path, rows=6000, seed=11, downsample_negatives=0.5)
    data = load_data("ctr", [path], seed=0)
    trained = train_tables("ctr", data, params={"epochs": 3}, downsample=0.5)
    assert trained.model.downsample_rate == pytest.approx(0.25)
    assert trained.params["downsample_rate"] == pytest.approx(0.25)
    assert trained.data["train_rows"] < data.train.num_rows


def _write(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def test_bad_training_inputs_are_one_line_errors(small_logs: Path, tmp_path: Path) -> None:
    table = pq.read_table(small_logs)
    zeros = table.set_column(
        table.column_names.index("click"), "click", pa.array([0] * table.num_rows, pa.int64())
    )
    one_label = _write(tmp_path / "zeros.parquet", zeros)
    with pytest.raises(TrainingInputError, match="click is 0 in all 4000 rows"):
        load_data("ctr", [one_label])
    with pytest.raises(LogReadError, match="no-such"):
        load_data("ctr", [tmp_path / "no-such.parquet"])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LogReadError):
        load_data("ctr", [empty])
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,app_id,click\n1,a,1\nnot-a-number,b,0\n")
    with pytest.raises(LogReadError, match="ts"):
        load_data("ctr", [bad])
    with pytest.raises(TrainingInputError, match="unknown model 'ltv'"):
        load_data("ltv", [small_logs])
    with pytest.raises(TrainingInputError, match="valid-fraction"):
        load_data("ctr", [small_logs], valid_fraction=1.5)
