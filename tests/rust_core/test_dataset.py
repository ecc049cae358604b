import numpy as np
import pytest

import rust_core
from features.samples import sample_path

SAMPLE = sample_path("libffm_train")


def csr(**overrides):
    arrays = {
        "indptr": np.array([0, 2, 3], dtype=np.uint64),
        "fields": np.array([0, 1, 2], dtype=np.uint32),
        "indices": np.array([5, 9, 1], dtype=np.uint32),
        "values": np.array([1.0, 0.5, 2.0], dtype=np.float32),
        "labels": np.array([1.0, 0.0], dtype=np.float32),
    }
    arrays.update(overrides)
    return arrays


def test_from_csr_borrows_and_freezes_the_arrays():
    arrays = csr(weights=np.array([1.0, 3.0], dtype=np.float32))
    ds = rust_core.Dataset.from_csr(**arrays)
    assert (ds.num_rows, ds.num_fields, ds.num_features, ds.nnz, len(ds)) == (2, 3, 10, 3, 2)
    np.testing.assert_array_equal(ds.labels, [1.0, 0.0])
    np.testing.assert_array_equal(ds.weights, [1.0, 3.0])
    # No copy: the dataset reads the caller's memory, so the arrays are made read-only.
    for a in arrays.values():
        assert not a.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        arrays["values"][0] = 7.0


def test_from_csr_accepts_signed_index_types():
    ds = rust_core.Dataset.from_csr(
        **csr(
            indptr=np.array([0, 2, 3], dtype=np.int64), fields=np.array([0, 1, 2], dtype=np.int32)
        )
    )
    assert ds.num_rows == 2
    assert ds.weights is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"values": np.array([1.0, 0.5, 2.0])},
            "values must be a 1-d numpy array of float32, got float64",
        ),
        ({"indptr": [0, 2, 3]}, "indptr must be a 1-d numpy array of uint64 or int64, got list"),
        ({"indptr": np.array([0, 3, 2], dtype=np.uint64)}, "indptr decreases at row 1"),
        ({"labels": np.array([2.0, 0.0], dtype=np.float32)}, "label of row 0"),
        ({"fields": np.array([0, -1, 2], dtype=np.int32)}, "field id 4294967295"),
        ({"values": np.array([1.0, 0.5, 2.0, 4.0], dtype=np.float32)[::2][:3]}, "contiguous"),
    ],
)
def test_from_csr_refuses_bad_input(override, message):
    with pytest.raises(rust_core.DataError, match=message):
        rust_core.Dataset.from_csr(**csr(**override))


def test_from_libffm_reads_the_criteo_sample():
    if not SAMPLE.exists():
        pytest.skip(f"shared sample {SAMPLE} not present (set BIDSCORE_SAMPLES)")
    ds = rust_core.Dataset.from_libffm(SAMPLE)
    assert ds.num_rows == 200
    assert 17 <= ds.num_fields <= 18
    assert set(np.unique(ds.labels)) <= {0.0, 1.0}


def test_from_libffm_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.ffm"
    bad.write_text("1 0:1:1\n0 0:2:1\n1 0:x:1\n")
    with pytest.raises(rust_core.DataError, match=r"bad\.ffm:3: bad feature"):
        rust_core.Dataset.from_libffm(bad)
    with pytest.raises(FileNotFoundError, match=r"missing\.ffm"):
        rust_core.Dataset.from_libffm(tmp_path / "missing.ffm")
