"""FFM kernels (issue 20): runtime dispatch, padded latent vectors, the version-1 format,
and the approximate AdaGrad step. Speed is measured in bench/, never here."""

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rust_core
from tests.rust_core.planted import planted_lr

FIXTURES = Path(__file__).parents[2] / "rust_core" / "tests" / "fixtures"
SAMPLE = Path("/work/shared/data/criteo-libffm-sample")
KERNELS = rust_core.cpu_features()["available"]


def metrics_logloss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p.astype(np.float64), 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_dispatch_reports_its_choice():
    info = rust_core.cpu_features()
    assert info["kernel"] in info["available"]
    assert {"scalar", "legacy", "sse"} <= set(info["available"])
    assert info["chosen_by"] == "auto" or info["chosen_by"].startswith("BIDSCORE_KERNEL=")
    assert isinstance(info["features"], dict)


def test_environment_variable_forces_a_kernel(tmp_path):
    model = rust_core.train_ffm(planted_lr(500, seed=1).dataset, k=5, epochs=1)
    model.save(tmp_path / "m.bin")
    code = (
        "import sys, numpy as np, rust_core;"
        "from planted import planted_lr;"
        "m = rust_core.load_model(sys.argv[1]);"
        "d = planted_lr(200, seed=2).dataset;"
        "print(rust_core.cpu_features()['kernel'], rust_core.cpu_features()['chosen_by']);"
        "print(np.array_equal(m.predict(d), m.predict(d, kernel='sse')))"
    )
    env = {**os.environ, "BIDSCORE_KERNEL": "sse", "PYTHONPATH": str(Path(__file__).parent)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m.bin")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert out == ["sse", "BIDSCORE_KERNEL=sse", "True"]


def test_an_unavailable_or_unknown_kernel_is_refused():
    model = rust_core.train_ffm(planted_lr(300, seed=1).dataset, k=4, epochs=1)
    with pytest.raises(ValueError, match="not available"):
        model.predict(planted_lr(10, seed=2).dataset, kernel="neon")


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8, 12, 15, 16, 17])
def test_every_kernel_scores_like_the_scalar_reference(k):
    train, test = planted_lr(2000, seed=k), planted_lr(500, seed=100 + k)
    model = rust_core.train_ffm(train.dataset, k=k, epochs=2, seed=k)
    assert model.k == k
    assert model.stride == (k + 3) // 4 * 4
    want = model.predict(test.dataset, kernel="scalar").astype(np.float64)
    for kernel in KERNELS:
        got = model.predict(test.dataset, kernel=kernel).astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0, err_msg=kernel)


@pytest.mark.parametrize("kernel", KERNELS)
def test_single_thread_training_is_bit_reproducible_on_every_kernel(kernel):
    data = planted_lr(3000, seed=3).dataset
    runs = [
        rust_core.train_ffm(data, k=6, epochs=2, seed=5, kernel=kernel).checksum for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_version_1_fixtures_score_as_they_did():
    rows = rust_core.Dataset.from_libffm(FIXTURES / "v1_rows.libffm")
    for name in ("ffm_k3", "ffm_k4", "lr"):
        model = rust_core.load_model(FIXTURES / f"v1_{name}.bin")
        lines = (FIXTURES / f"v1_{name}.scores").read_text().splitlines()
        want = np.array([int(x, 16) for x in lines if not x.startswith("#")], dtype=np.uint32)
        want = want.view(np.float32)
        assert model.stride == model.k
        np.testing.assert_array_equal(model.predict(rows, kernel="legacy"), want)
        np.testing.assert_allclose(model.predict(rows), want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", ["ffm_k3", "ffm_k4", "lr"])
def test_version_2_fixtures_score_as_they_did(name):
    rows = rust_core.Dataset.from_libffm(FIXTURES / "v1_rows.libffm")
    path = FIXTURES / f"v2_{name}.bin"
    assert struct.unpack_from("<I", path.read_bytes(), 8)[0] == 2
    model = rust_core.load_model(path)
    lines = (FIXTURES / f"v2_{name}.scores").read_text().splitlines()
    want = np.array([int(x, 16) for x in lines if not x.startswith("#")], dtype=np.uint32)
    want = want.view(np.float32)
    np.testing.assert_array_equal(model.predict(rows, kernel="scalar"), want)
    for kernel in KERNELS:
        np.testing.assert_allclose(model.predict(rows, kernel=kernel), want, rtol=1e-6, atol=0)
    huge = rust_core.load_model(path, huge_pages=True)
    np.testing.assert_array_equal(huge.predict(rows, kernel="scalar"), want)


def test_a_corrupt_stride_is_refused(tmp_path):
    model = rust_core.train_ffm(planted_lr(300, seed=1).dataset, k=3, epochs=1)
    model.save(tmp_path / "good.bin")
    good = (tmp_path / "good.bin").read_bytes()
    assert struct.unpack_from("<II", good, 8)[0] == 3
    assert struct.unpack_from("<I", good, 96)[0] == 4
    bad = good[:96] + struct.pack("<I", 5) + good[100:]
    (tmp_path / "bad.bin").write_bytes(bad)
    with pytest.raises(rust_core.ModelFormatError, match="header checksum"):
        rust_core.load_model(tmp_path / "bad.bin")


def test_huge_page_copy_scores_like_the_mapping(tmp_path):
    model = rust_core.train_ffm(planted_lr(1000, seed=1).dataset, k=4, epochs=1)
    model.save(tmp_path / "m.bin")
    mapped = rust_core.load_model(tmp_path / "m.bin")
    huge = rust_core.load_model(tmp_path / "m.bin", huge_pages=True)
    assert (mapped.mapped, huge.huge_pages, huge.checksum) == (True, True, mapped.checksum)
    test = planted_lr(300, seed=2).dataset
    np.testing.assert_array_equal(mapped.predict(test), huge.predict(test))


def accuracy_pairs():
    planted = (planted_lr(40_000, seed=11).dataset, planted_lr(10_000, seed=12).dataset)
    yield "planted", planted, 8
    if SAMPLE.exists():
        sample = tuple(
            rust_core.Dataset.from_libffm(SAMPLE / f"small_{part}.txt")
            for part in ("train", "test")
        )
        yield "criteo-sample", sample, 4


@pytest.mark.parametrize("k", [4, 15])
def test_approximate_adagrad_step_matches_the_exact_one(k):
    for name, (train, valid), epochs in accuracy_pairs():
        y = valid.labels
        exact = rust_core.train_ffm(train, k=k, epochs=epochs, kernel="legacy")
        exact_ll = metrics_logloss(exact.predict(valid), y)
        for kernel in KERNELS:
            if kernel == "legacy":
                continue
            approx = rust_core.train_ffm(train, k=k, epochs=epochs, kernel=kernel)
            ll = metrics_logloss(approx.predict(valid), y)
            assert abs(ll - exact_ll) <= 1e-3 * exact_ll, (name, kernel, ll, exact_ll)
