"""features.samples: the shared Avazu, Criteo and libffm samples read and tokenise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.readers import read_libffm, read_logs
from features.samples import (
    AVAZU_LABEL,
    AVAZU_SPEC,
    CRITEO_LABEL,
    CRITEO_SPEC,
    AvazuLog,
    CriteoLog,
    sample_path,
    samples_dir,
)
from features.tokenize import tokenize_table


def needs_sample(name: str) -> Path:
    path = sample_path(name)
    if not path.is_file():
        pytest.skip(f"shared sample {path} not present (set BIDSCORE_SAMPLES)")
    return path


def test_avazu_sample_tokenises_one_row_per_log_line():
    table = read_logs(needs_sample("avazu"), schema=AvazuLog, required_labels=[AVAZU_LABEL])

    dataset = tokenize_table(table, AVAZU_SPEC, label=AVAZU_LABEL)

    assert dataset.num_rows == 100
    assert dataset.num_fields == len(AVAZU_SPEC.fields)
    assert np.array_equal(dataset.labels, table[AVAZU_LABEL].to_numpy().astype(np.float32))


def test_criteo_sample_with_gaps_tokenises():
    table = read_logs(needs_sample("criteo"), schema=CriteoLog, required_labels=[CRITEO_LABEL])

    dataset = tokenize_table(table, CRITEO_SPEC, label=CRITEO_LABEL)

    assert dataset.num_rows == 200
    assert dataset.num_fields == 39
    assert dataset.labels.sum() == table[CRITEO_LABEL].to_numpy().sum()


def test_libffm_samples_read_as_datasets():
    train = read_libffm(needs_sample("libffm_train"))
    test = read_libffm(needs_sample("libffm_test"))

    assert (train.num_rows, test.num_rows) == (200, 200)
    assert set(np.unique(train.labels)) <= {0.0, 1.0}


def test_avazu_hour_property_reads_the_hour_from_yymmddhh():
    assert AvazuLog(hour=14102113).hour_of_day == 13


def test_samples_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("BIDSCORE_SAMPLES", str(tmp_path))

    assert samples_dir() == tmp_path
    assert sample_path("criteo") == tmp_path / "criteo-sample" / "criteo_sample.csv"
    with pytest.raises(KeyError, match="unknown sample 'kdd'"):
        sample_path("kdd")
