import threading

import numpy as np
import pytest

import rust_core
from tests.rust_core.planted import planted_lr

FP = "ab" * 32


@pytest.fixture(scope="module")
def data():
    return planted_lr(2000, seed=1)


@pytest.fixture(scope="module")
def ffm(data):
    return rust_core.train_ffm(data.dataset, epochs=2, fingerprint=FP, downsample_rate=0.5)


def test_save_and_load_round_trip(ffm, data, tmp_path):
    path = tmp_path / "ctr.bin"
    ffm.save(path)
    loaded = rust_core.load_model(str(path))
    assert loaded.mapped
    assert not ffm.mapped
    assert (loaded.algorithm, loaded.k, loaded.hash_bits, loaded.num_fields) == ("ffm", 4, 8, 8)
    assert loaded.fingerprint == FP
    assert loaded.downsample_rate == 0.5
    assert loaded.checksum == ffm.checksum
    assert len(ffm.checksum) == 16
    assert loaded.normalize
    np.testing.assert_array_equal(loaded.predict(data.dataset), ffm.predict(data.dataset))
    assert [p.name for p in tmp_path.iterdir()] == ["ctr.bin"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:100], "truncated model file"),
        (lambda b: b[:-4], "truncated or padded"),
        (lambda b: b"NOTMODEL" + b[8:], "bad magic"),
        (lambda b: b[:8] + b"\x04" + b[9:], "version 4"),
        (lambda b: b[:130] + b"\x01" + b[131:], "before the payload are not zero"),
        (lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:], "header checksum"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 0x80]), "payload checksum"),
    ],
)
def test_damaged_files_are_refused(ffm, tmp_path, damage, message):
    good = tmp_path / "good.bin"
    ffm.save(good)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(rust_core.ModelFormatError, match=message) as exc:
        rust_core.load_model(bad)
    assert "bad.bin" in str(exc.value)


def test_single_row_matches_batch_and_skips_unseen_fields(ffm, data):
    batch = ffm.predict(data.dataset)
    fields, indices = list(range(8)), [f * 30 + 3 for f in range(8)]
    one = rust_core.Dataset.from_csr(
        np.array([0, 8], dtype=np.uint64),
        np.array(fields, dtype=np.uint32),
        np.array(indices, dtype=np.uint32),
        np.ones(8, dtype=np.float32),
        np.zeros(1, dtype=np.float32),
    )
    p = ffm.predict_row(fields, indices, [1.0] * 8)
    assert p == ffm.predict(one)[0]
    assert batch.dtype == np.float32
    assert batch.shape == (data.dataset.num_rows,)
    # Field 99 is beyond the model's fields; index + 2^bits wraps to the same bucket.
    assert ffm.predict_row([*fields, 99], [*indices, 1], [1.0] * 9) == p
    assert ffm.predict_row(fields, [indices[0] + 256, *indices[1:]], [1.0] * 8) == p
    with pytest.raises(rust_core.DataError, match="differ in length"):
        ffm.predict_row([0], [1, 2], [1.0])


def test_predicting_from_threads_gives_the_same_answers(ffm, data):
    expected = ffm.predict(data.dataset)
    results: list[np.ndarray] = []

    def work():
        for _ in range(5):
            results.append(ffm.predict(data.dataset))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 20
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.bin"):
        rust_core.load_model(tmp_path / "nope.bin")
