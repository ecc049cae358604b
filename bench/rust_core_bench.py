"""rust_core benchmark: ns per scored row (LR and FFM) and training row-epochs per second.

Models are written by this script straight from the documented file format (so the Rust
loader is also checked against an independent writer) and memory-mapped like in serving.
Same-run baselines: a vectorised numpy implementation of the same scoring (its results are
cross-checked against rust_core's) and a per-row numpy FFM trainer; xlearn when importable.

    .venv/bin/python bench/rust_core_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os

# numpy's OpenBLAS pool spins for a while after each call, stealing CPU from the training
# threads being measured; this benchmark needs no BLAS threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xxhash

import rust_core
from bench.machine import machine

FIELDS = 10
CHUNK = 1 << 24


def write_model(
    path: Path,
    algorithm: str,
    bits: int,
    k: int,
    seed: int,
    fields: int | None = None,
    stride: int | None = None,
) -> None:
    """A model file with uniform random weights in [-0.05, 0.05), written in chunks.

    `stride=None` writes format version 1 (unpadded latent vectors, what the code before the
    padded kernels wrote); a stride writes version 3, this build's, with each latent vector
    padded with zeros to `stride` floats and the zero bytes after the header that put the
    latent blocks on 64-byte lines. The same seed gives the same real weights either way."""
    fields = FIELDS if fields is None else fields
    n = 1 << bits
    width = k if stride is None else stride
    length = 1 + n if algorithm == "lr" else 1 + n + n * fields * width
    rng = np.random.default_rng(seed)
    digest = xxhash.xxh3_64()

    def uniform(m: int) -> np.ndarray:
        return rng.random(m, dtype=np.float32) * np.float32(0.1) - np.float32(0.05)

    # Version 3: the payload starts where its latent blocks (after 1 + n floats) fall on a
    # 64-byte line; LR models and version 1 have no gap.
    offset = 128 if stride is None or algorithm == "lr" else 128 + (64 - 4 * (1 + n) % 64) % 64
    with path.open("wb") as f:
        f.write(b"\0" * offset)

        def emit(chunk: np.ndarray) -> None:
            b = chunk.astype("<f4").tobytes()
            digest.update(b)
            f.write(b)

        emit(uniform(1 + n))
        if algorithm == "ffm":
            per = max(1, CHUNK // (fields * k))
            for start in range(0, n, per):
                m = min(per, n - start)
                v = np.zeros((m, fields, width), dtype=np.float32)
                v[:, :, :k] = uniform(m * fields * k).reshape(m, fields, k)
                emit(v)
        version = 1 if stride is None else 3
        head = struct.pack(
            "<8sIIIIII32sdQQ",
            b"BIDSCORE",
            version,
            1 if algorithm == "lr" else 2,
            bits,
            fields,
            k,
            0 if algorithm == "lr" else 1,
            b"\0" * 32,
            1.0,
            length * 4,
            digest.intdigest(),
        )
        # Version 3 stores the latent stride at byte 96 and the payload offset at 100, and its
        # header checksum covers bytes 0..88 and 96..128; version 1's covers 0..88 and bytes
        # 96..128 are zero.
        tail = b""
        if version == 3:
            tail = struct.pack("<II", 0 if algorithm == "lr" else width, offset)
        tail += b"\0" * (32 - len(tail))
        covered = head if version == 1 else head + tail
        head += struct.pack("<Q", xxhash.xxh3_64_intdigest(covered)) + tail
        f.seek(0)
        f.write(head)


def random_rows(rows: int, nnz: int, bits: int, seed: int, fields: int = FIELDS, zipf: bool = True):
    """Rows of `nnz` features over `fields` fields. Indices are Zipf(1.2)-distributed ranks
    scattered over 2^bits per field (real CTR features are that skewed), or uniform
    (every access a cache miss: the worst case)."""
    rng = np.random.default_rng(seed)
    f = np.tile(np.arange(nnz, dtype=np.uint32) % fields, rows)
    if zipf:
        ranks = np.minimum(rng.zipf(1.2, rows * nnz), 1 << 30).astype(np.uint64)
        j = ((ranks * 2654435761 + f.astype(np.uint64) * 97531) % (1 << bits)).astype(np.uint32)
    else:
        j = rng.integers(0, 1 << bits, rows * nnz, dtype=np.uint32)
    y = (rng.random(rows) < 0.2).astype(np.float32)
    indptr = np.arange(0, rows * nnz + 1, nnz, dtype=np.uint64)
    ds = rust_core.Dataset.from_csr(indptr, f, j, np.ones(rows * nnz, dtype=np.float32), y)
    return ds, f.reshape(rows, nnz), j.reshape(rows, nnz)


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def numpy_scores(weights: np.ndarray, algorithm: str, bits: int, k: int, f, j) -> np.ndarray:
    """The same model in vectorised numpy: the same-run scoring baseline."""
    n = 1 << bits
    t = weights[0] + weights[1 + j.astype(np.int64)].sum(axis=1, dtype=np.float32)
    if algorithm == "ffm":
        v = weights[1 + n :].reshape(n, FIELDS, k)
        a, b = np.triu_indices(f.shape[1], 1)
        r = np.float32(1.0 / f.shape[1])  # instance normalisation, all values 1
        va = v[j[:, a], f[:, b]]
        vb = v[j[:, b], f[:, a]]
        t = t + (va * vb).sum(axis=(1, 2)) * r
    return 1 / (1 + np.exp(-t))


def score_one_model(path: Path, algorithm: str, bits: int, k: int, rows: int) -> None:
    model = rust_core.load_model(path)
    weights = np.memmap(path, dtype="<f4", mode="r", offset=128)
    name = algorithm + (f" k={k}" if k else "")
    for nnz in (10, 17, 20, 40):
        ds, f, j = random_rows(rows, nnz, bits, seed=nnz)
        batch = best_of(lambda ds=ds: model.predict(ds)) / rows * 1e9
        uniform, _, _ = random_rows(rows, nnz, bits, seed=nnz, zipf=False)
        worst = best_of(lambda ds=uniform: model.predict(ds)) / rows * 1e9
        few = 2_000
        fl, jl, ones = f[:few].tolist(), j[:few].tolist(), [1.0] * nnz

        def single(fl=fl, jl=jl, ones=ones) -> None:
            for a, b in zip(fl, jl, strict=True):
                model.predict_row(a, b, ones)

        per_call = best_of(single) / few * 1e9
        m = min(rows, 2_000 if nnz == 40 else 5_000)
        fm, jm = f[:m], j[:m]
        ref = numpy_scores(weights, algorithm, bits, k, fm, jm)
        np.testing.assert_allclose(model.predict(ds)[:m], ref, rtol=1e-4, atol=1e-6)
        base = best_of(lambda fm=fm, jm=jm: numpy_scores(weights, algorithm, bits, k, fm, jm))
        base = base / m * 1e9
        print(
            f"{name:<10}{bits:>5}{nnz:>5}{batch:>9.0f}{worst:>9.0f}{per_call:>9.0f}{base:>9.0f}"
            f"{base / batch:>9.1f}"
        )


def scoring_table(quick: bool, tmp: Path) -> None:
    print("\n## Scoring: ns per row (10 fields; numpy = vectorised same-run baseline)")
    print("batch = Model.predict(Dataset) on Zipf features; uniform = same on uniform features;")
    print("py row = one Model.predict_row call from Python (list arguments); numpy on Zipf rows")
    print(
        f"{'model':<10}{'bits':>5}{'nnz':>5}{'batch':>9}{'uniform':>9}{'py row':>9}"
        f"{'numpy':>9}{'x numpy':>9}"
    )
    rows = 20_000 if not quick else 4_000
    for bits in (18, 22):
        for algorithm, k in (("lr", 0), ("ffm", 4), ("ffm", 8)):
            path = tmp / f"{algorithm}{k}_{bits}.bin"
            write_model(path, algorithm, bits, k, seed=bits + k)
            score_one_model(path, algorithm, bits, k, rows)
            path.unlink()


def numpy_train_ffm(f, j, y, bits: int, k: int, eta: float = 0.2) -> None:
    """LIBFFM's per-row AdaGrad in numpy (pairs vectorised per row): the training baseline."""
    n, fields = 1 << bits, int(f.max()) + 1
    rng = np.random.default_rng(0)
    v = rng.random((n, fields, k), dtype=np.float32) / np.sqrt(k)
    g = np.ones_like(v)
    a, b = np.triu_indices(f.shape[1], 1)
    r = 1.0 / f.shape[1]
    for row in range(f.shape[0]):
        ja, jb, fa, fb = j[row, a], j[row, b], f[row, a], f[row, b]
        va, vb = v[ja, fb], v[jb, fa]
        t = (va * vb).sum() * r
        kappa = 1 / (1 + np.exp(-t)) - y[row]
        ga, gb = kappa * r * vb, kappa * r * va
        g[ja, fb] += ga * ga
        g[jb, fa] += gb * gb
        v[ja, fb] -= eta * ga / np.sqrt(g[ja, fb])
        v[jb, fa] -= eta * gb / np.sqrt(g[jb, fa])


XLEARN_SCRIPT = """
import sys, time, xlearn as xl
path, out, rows, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = xl.create_ffm()
m.setTrain(path)
m.setQuiet()
t = time.perf_counter()
m.fit({"task": "binary", "lr": 0.2, "lambda": 2e-5, "k": 4, "epoch": epochs, "nthread": 1}, out)
print(rows * epochs / (time.perf_counter() - t))
"""


def xlearn_train(f, j, y, epochs: int) -> str:
    """xlearn on the same rows, in a subprocess (the PyPI build crashes in fit here)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.ffm"
        with path.open("w") as out:
            for frow, jrow, label in zip(f.tolist(), j.tolist(), y.tolist(), strict=True):
                feats = " ".join(f"{a}:{b}:1" for a, b in zip(frow, jrow, strict=True))
                out.write(f"{int(label)} {feats}\n")
        args = [str(path), str(Path(tmp) / "model.out"), str(len(y)), str(epochs)]
        run = subprocess.run(
            [sys.executable, "-c", XLEARN_SCRIPT, *args],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["?"])[-1]
            return f"xlearn crashed (exit {run.returncode}): {last}"
        rate = float(run.stdout.strip().splitlines()[-1])
        return (
            f"xlearn FFM (k=4, 1 thread, same rows, includes its parsing): {rate:,.0f} row-epochs/s"
        )


def training_table(quick: bool) -> None:
    print("\n## Training: row-epochs per second (17 non-zeros over 17 fields, Zipf, bits 16, k=4)")
    rows, epochs = (200_000, 3) if not quick else (50_000, 2)
    ds, f, j = random_rows(rows, 17, 16, seed=3, fields=17)
    y = ds.labels
    results, cpu = {}, {}
    for name, train in (("ffm", rust_core.train_ffm), ("lr", rust_core.train_lr)):
        for threads in (1, 2):
            wall, used = float("inf"), float("inf")
            for _ in range(2):
                t, c = time.perf_counter(), time.process_time()
                train(ds, epochs=epochs, threads=threads, bits=16)
                wall = min(wall, time.perf_counter() - t)
                used = min(used, time.process_time() - c)
            results[name, threads] = rows * epochs / wall
            cpu[name, threads] = rows * epochs / used
    base_rows = 2_000
    base = base_rows / best_of(
        lambda: numpy_train_ffm(f[:base_rows], j[:base_rows], y, 16, 4), repeat=1
    )
    # On a shared machine the wall-clock rate depends on everyone else's load; the rate per
    # CPU-second of this process is the load-independent figure.
    print(
        f"{'model':<8}{'1 thread':>12}{'2 threads':>12}{'2t/1t':>8}{'1t/cpu-s':>12}{'2t/cpu-s':>12}"
    )
    for name in ("ffm", "lr"):
        one, two = results[name, 1], results[name, 2]
        print(
            f"{name:<8}{one:>12,.0f}{two:>12,.0f}{two / one:>8.2f}"
            f"{cpu[name, 1]:>12,.0f}{cpu[name, 2]:>12,.0f}"
        )
    print(
        f"numpy per-row FFM baseline: {base:,.0f} row-epochs/s; rust_core 1 thread = "
        f"{results['ffm', 1] / base:.0f}x"
    )
    print(
        f"LIBFFM reference (issue 2): 850,000 row-epochs/s on 1 thread; rust_core = "
        f"{results['ffm', 1] / 850_000:.2f}x wall, {cpu['ffm', 1] / 850_000:.2f}x per CPU-second"
    )
    print(f"machine after training: {machine()}")
    if importlib.util.find_spec("xlearn") is None:
        print("xlearn: not importable (pip install xlearn), skipped")
    else:
        print(xlearn_train(f[:50_000], j[:50_000], y[:50_000], epochs))


STREAM_SCRIPT = """
import numpy as np, os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})
a = np.ones(64 << 20, dtype=np.float32)  # 256 MB, far beyond the caches
b = np.empty_like(a)
print("ready", flush=True)
while True:
    np.copyto(b, a)
"""


class MemoryStreamer:
    """Another process copying 256 MB arrays in a loop on the other core: the contention a
    scoring process meets on a shared machine (memory bandwidth, and caches that no longer
    hold the page tables). The benchmark process is pinned to the first core meanwhile."""

    def __enter__(self) -> MemoryStreamer:
        cores = sorted(os.sched_getaffinity(0))
        self.saved = set(cores)
        mine, other = cores[0], cores[-1]
        os.sched_setaffinity(0, {mine})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", STREAM_SCRIPT, str(other)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.proc.stdout.readline()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()
        os.sched_setaffinity(0, self.saved)


def padded(k: int) -> int:
    return (k + 3) // 4 * 4


def best_cpu(fn: Callable[[], object]) -> float:
    """CPU time of this thread for one call (scoring runs on the calling thread with the GIL
    released). On a shared machine wall-clock time mostly measures the other processes; CPU
    time still includes every stall on memory, which is what is compared."""
    t = time.thread_time()
    fn()
    return time.thread_time() - t


def predict_times(legacy, new, huge, ds, avx512: bool) -> dict[str, float]:
    """Best-of-7 CPU seconds of Model.predict for each variant, interleaved round by round
    so that a burst of outside load hits all variants alike."""
    runs: dict[str, Callable[[], object]] = {
        "legacy": lambda: legacy.predict(ds, kernel="legacy"),
        "new": lambda: new.predict(ds),
        "huge": lambda: huge.predict(ds),
    }
    if avx512:
        runs["avx512"] = lambda: huge.predict(ds, kernel="avx512")
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(7):
        for name, fn in runs.items():
            best[name] = min(best[name], best_cpu(fn))
    best.setdefault("avx512", float("nan"))
    return best


def kernels_predict(quick: bool, tmp: Path) -> None:
    """Today's kernels (format version 1 files, `legacy` kernel, page-cache mapping) against
    the padded, dispatched kernels, with and without the huge-page copy of the weights."""
    print("\n## FFM kernels, predict: CPU ns per row (Model.predict, one feature per field)")
    print("legacy = the kernels before this change on a version-1 file (the same-run baseline);")
    print(f"new = {rust_core.cpu_features()['kernel']} (runtime dispatch) on a padded version-3")
    print("file; +huge = load_model(huge_pages=True); contended = while another process copies")
    print("256 MB arrays on the other core (both processes pinned)")
    rows = 100_000 if not quick else 20_000
    print(
        f"{'shape':<14}{'k':>3}{'features':>9}{'load':>11}{'legacy':>8}{'new':>8}{'+huge':>8}"
        f"{'avx512':>8}{'new/leg':>8}{'huge/leg':>9}"
    )
    for fields, bits in ((16, 18), (10, 13)):
        for k in (4, 15):
            v1, v2 = tmp / "v1.bin", tmp / "v2.bin"
            write_model(v1, "ffm", bits, k, seed=k, fields=fields)
            write_model(v2, "ffm", bits, k, seed=k, fields=fields, stride=padded(k))
            legacy = rust_core.load_model(v1)
            new = rust_core.load_model(v2)
            huge = rust_core.load_model(v2, huge_pages=True)
            for zipf in (True, False):
                ds, _, _ = random_rows(rows, fields, bits, seed=k, fields=fields, zipf=zipf)
                np.testing.assert_allclose(
                    huge.predict(ds), legacy.predict(ds, kernel="legacy"), rtol=1e-5
                )
                avx512 = "avx512" in rust_core.cpu_features()["available"]
                for load in ("quiet", "contended"):
                    ctx = MemoryStreamer() if load == "contended" else contextlib.nullcontext()
                    with ctx:
                        t = predict_times(legacy, new, huge, ds, avx512)
                    ns = {name: v / rows * 1e9 for name, v in t.items()}
                    print(
                        f"{fields:>3} x 2^{bits:<6}{k:>3}{'zipf' if zipf else 'uniform':>9}"
                        f"{load:>11}{ns['legacy']:>8.0f}{ns['new']:>8.0f}{ns['huge']:>8.0f}"
                        f"{ns['avx512']:>8.0f}{ns['new'] / ns['legacy']:>8.2f}"
                        f"{ns['huge'] / ns['legacy']:>9.2f}"
                    )
            v1.unlink()
            v2.unlink()


def kernels_train(quick: bool) -> tuple[float, float]:
    """Prints the training table; returns k = 4's wall-clock rates of the new kernel on 1 and
    2 threads (the Zipf row of `kernels_thread_scaling`)."""
    print("\n## FFM kernels, training: row-epochs per second (17 fields, Zipf, bits 16)")
    print("legacy = the kernels before this change (unpadded, exact AdaGrad step, 4 KiB pages);")
    print("new = runtime dispatch (padded, rsqrt + Newton AdaGrad step, huge pages). Rates per")
    print("CPU-second of the process and per wall-clock second (best of 3, interleaved)")
    rows, epochs = (200_000, 2) if not quick else (40_000, 2)
    ds, _, _ = random_rows(rows, 17, 16, seed=3, fields=17)
    print(
        f"{'k':>3}{'legacy 1t':>11}{'new 1t':>11}{'new/leg':>9}{'leg wall':>11}{'new wall':>11}"
        f"{'wall ratio':>11}{'new 2t wall':>12}{'2t/1t wall':>11}"
    )
    print("(1t columns per CPU-second of the process; wall columns per wall-clock second)")
    k4 = (0.0, 0.0)
    for k in (4, 15):
        wall = {"legacy": 0.0, "new": 0.0, "new2": 0.0}
        cpu = dict(wall)
        variants = (("legacy", "legacy", 1), ("new", None, 1), ("new2", None, 2))
        for _ in range(3):
            for name, kernel, threads in variants:
                t0, c0 = time.perf_counter(), time.process_time()
                rust_core.train_ffm(ds, k=k, epochs=epochs, threads=threads, bits=16, kernel=kernel)
                w, c = time.perf_counter() - t0, time.process_time() - c0
                wall[name] = max(wall[name], rows * epochs / w)
                cpu[name] = max(cpu[name], rows * epochs / c)
        print(
            f"{k:>3}{cpu['legacy']:>11,.0f}{cpu['new']:>11,.0f}{cpu['new'] / cpu['legacy']:>9.2f}"
            f"{wall['legacy']:>11,.0f}{wall['new']:>11,.0f}{wall['new'] / wall['legacy']:>11.2f}"
            f"{wall['new2']:>12,.0f}{wall['new2'] / wall['new']:>11.2f}"
        )
        if k == 4:
            k4 = (wall["new"], wall["new2"])
    print(f"machine after training: {machine()}")
    return k4


def kernels_thread_scaling(quick: bool, zipf: tuple[float, float]) -> None:
    """Two Hogwild threads against one on the same shape, Zipf against uniform indices. One
    thread trains through plain memory, two through the shared (atomic) view of the weights;
    the skew changes how much of one thread's time is cache misses that a second thread can
    overlap (docs/benchmarks.md, "Training: what limits k = 4 and two threads"). The Zipf
    rates are the training table's k = 4 row (`zipf`); only the uniform rows are trained here."""
    print("\n## FFM training, 2 threads / 1 thread by feature skew (k=4, bits 16, wall-clock)")
    rows, epochs = (200_000, 2) if not quick else (40_000, 2)
    ds, _, _ = random_rows(rows, 17, 16, seed=3, fields=17, zipf=False)
    uniform = [0.0, 0.0]
    for _ in range(3):
        for threads in (1, 2):
            t0 = time.perf_counter()
            rust_core.train_ffm(ds, k=4, epochs=epochs, threads=threads, bits=16)
            rate = rows * epochs / (time.perf_counter() - t0)
            uniform[threads - 1] = max(uniform[threads - 1], rate)
    print(f"{'features':<10}{'1 thread':>12}{'2 threads':>12}{'2t/1t':>8}")
    for name, (one, two) in (("Zipf", zipf), ("uniform", uniform)):
        print(f"{name:<10}{one:>12,.0f}{two:>12,.0f}{two / one:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows, for a smoke run")
    parser.add_argument(
        "--kernels", action="store_true", help="only the FFM kernel comparison (issue 20)"
    )
    args = parser.parse_args()
    print(f"# rust_core benchmark\nmachine: {machine()}")
    print(f"kernel dispatch: {rust_core.cpu_features()}")
    if args.kernels:
        with tempfile.TemporaryDirectory() as tmp:
            kernels_predict(args.quick, Path(tmp))
        kernels_thread_scaling(args.quick, kernels_train(args.quick))
        print(f"machine at the end: {machine()}")
        return
    print("features: Zipf(1.2)-skewed indices unless marked uniform (every access a cache miss)")
    with tempfile.TemporaryDirectory() as tmp:
        scoring_table(args.quick, Path(tmp))
    training_table(args.quick)


if __name__ == "__main__":
    main()
