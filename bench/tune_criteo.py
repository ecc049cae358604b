"""`tune_ffm` on real CTR data against LIBFFM's best configuration and the bidscore defaults.

Compared on the test rows, every choice made on the validation rows only:

- bidscore defaults = LIBFFM's published defaults (k=4, eta=0.2, lambda=2e-5, 15 iterations,
  normalisation on), trained on train (with bidscore's bias and linear terms);
- LIBFFM defaults with `--auto-stop` on the validation rows (LIBFFM's recommended use);
- LIBFFM best configuration: the grid k in {4, 8, 16} x eta in {0.02, 0.05, 0.1, 0.2} x
  lambda in {2e-5, 2e-4, 1e-3} with auto-stop (up to 50 iterations), the one with the
  lowest validation logloss. Trained by rust_core as LIBFFM's model (`linear=False`: no
  bias or linear terms) and, with `--libffm DIR` (a directory holding a built `ffm-train` /
  `ffm-predict` of LIBFFM), also by real LIBFFM on the same split files (`-s 1`);
- tune_ffm, `--trials` trials (threads 1, sampler seed `--seed`), once with bidscore's model
  (bias and linear terms, the default) and once with LIBFFM's (`linear=False`).

Data (`--data`, or the BIDSCORE_TUNE_DATA environment variable), never in the repository:

- a directory with `small_train.txt` / `small_test.txt` (xlearn's Criteo demo, libffm text):
  small_train is split (seeded, 75/25) into train and validation, small_test is the test set;
- a directory with `frappe.*.libfm` (the Frappe CTR set as preprocessed for NFM, libfm text:
  label +-1 then ten `index:1`, one per field in a fixed order; docs/benchmarks.md says
  where to get it): the files are pooled, converted to libffm (field = position) and split
  seeded-random 60/20/20 into train / validation / test (Frappe has no timestamps);
- a libffm text file: split the same way.

`--rows N` keeps a seeded random N of the pooled rows before splitting. `--seed` seeds the
split and the sampler. The script prints bootstrap 95% intervals of the test differences
(tune_ffm minus each); read them before the point estimates.

    .venv/bin/python bench/tune_criteo.py [--data PATH] [--trials 30] [--seed 0]
        [--rows N] [--libffm DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

import rust_core
from bench.machine import machine
from control.metrics import evaluate
from control.tuning import tune_ffm

LIBFFM_DEFAULTS = {"k": 4, "eta": 0.2, "l2": 2e-5, "epochs": 15, "normalize": True}
GRID = {"k": (4, 8, 16), "eta": (0.02, 0.05, 0.1, 0.2), "l2": (2e-5, 2e-4, 1e-3)}
MAX_ITER = 50

Predict = Callable[[str], npt.NDArray[np.float64]]  # "valid" / "test" -> probabilities


def _write(path: Path, lines: Sequence[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def _frappe_line(line: str) -> str:
    """NFM's libfm line (`-1 204:1 4798:1 ...`, one feature per field) -> libffm text."""
    label, *feats = line.split()
    y = "1" if float(label) > 0 else "0"
    return " ".join([y, *(f"{f}:{x}" for f, x in enumerate(feats))])


def prepare(data: Path, tmp: Path, seed: int, rows: int | None) -> str:
    """Writes tr.txt / va.txt / te.txt (libffm text) into `tmp`; returns how it split."""
    rng = np.random.default_rng(seed)
    if (data / "small_train.txt").exists():
        lines = [x for x in (data / "small_train.txt").read_text().splitlines() if x]
        held = rng.random(len(lines)) < 0.25
        _write(tmp / "tr.txt", [x for x, h in zip(lines, held, strict=True) if not h])
        _write(tmp / "va.txt", [x for x, h in zip(lines, held, strict=True) if h])
        _write(tmp / "te.txt", [x for x in (data / "small_test.txt").read_text().splitlines() if x])
        return "small_train.txt split seeded 75/25 into train/valid; small_test.txt is test"
    if data.is_dir():
        files = sorted(data.glob("frappe.*.libfm"))
        if not files:
            raise SystemExit(f"{data}: no small_train.txt nor frappe.*.libfm")
        lines = [_frappe_line(x) for f in files for x in f.read_text().splitlines() if x]
        origin = " + ".join(f.name for f in files) + " pooled, converted to libffm"
    else:
        lines = [x for x in data.read_text().splitlines() if x]
        origin = data.name
    order = rng.permutation(len(lines))
    if rows is not None and rows < len(lines):
        order = order[:rows]
        origin += f", seeded random {rows} rows kept"
    n = len(order)
    cut1, cut2 = int(0.6 * n), int(0.8 * n)
    _write(tmp / "tr.txt", [lines[i] for i in order[:cut1]])
    _write(tmp / "va.txt", [lines[i] for i in order[cut1:cut2]])
    _write(tmp / "te.txt", [lines[i] for i in order[cut2:]])
    return origin + "; split seeded-random 60/20/20 into train/valid/test"


def logloss(y: npt.NDArray[np.float64], p: npt.NDArray[np.float64]) -> float:
    return evaluate(y, p).logloss


class _Scorer:
    """Test logloss and AUC of fixed predictions under row weights (a bootstrap resample is
    a weighting of the rows by how often each was drawn), in O(rows) per resample."""

    def __init__(self, y: npt.NDArray[np.float64], p: npt.NDArray[np.float64]) -> None:
        q = np.clip(p, 1e-15, 1.0 - 1e-15)
        self.y = y
        self.loss = -(y * np.log(q) + (1.0 - y) * np.log(1.0 - q))
        _, self.group = np.unique(q, return_inverse=True)  # tie groups, ascending score
        self.groups = int(self.group.max()) + 1

    def __call__(self, w: npt.NDArray[np.float64]) -> tuple[float, float]:
        pos = np.bincount(self.group, weights=w * self.y, minlength=self.groups)
        neg = np.bincount(self.group, weights=w * (1.0 - self.y), minlength=self.groups)
        below = np.cumsum(neg) - neg  # negatives scored strictly lower
        auc = float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))
        return float((w * self.loss).sum() / w.sum()), auc


def bootstrap(
    y: npt.NDArray[np.float64], a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """95% intervals of logloss(a) - logloss(b) and auc(a) - auc(b) over resampled rows."""
    rng = np.random.default_rng(0)
    sa, sb = _Scorer(y, a), _Scorer(y, b)
    dl, da = [], []
    for _ in range(1000):
        w = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(np.float64)
        if (w * y).sum() in (0.0, w.sum()):
            continue
        (la, aa), (lb, ab) = sa(w), sb(w)
        dl.append(la - lb)
        da.append(aa - ab)
    q = (2.5, 97.5)
    lo, hi = np.percentile(dl, q)
    alo, ahi = np.percentile(da, q)
    return (float(lo), float(hi)), (float(alo), float(ahi))


class RealLibffm:
    """LIBFFM's own `ffm-train` / `ffm-predict` on the split files (one thread)."""

    def __init__(self, bindir: Path, tmp: Path) -> None:
        self.bindir, self.tmp = bindir, tmp
        self.runs = 0

    def train(self, *, k: int, eta: float, l2: float, iters: int, auto_stop: bool) -> Predict:
        self.runs += 1
        model = self.tmp / f"libffm-{self.runs}.model"
        cmd = [str(self.bindir / "ffm-train"), "-k", str(k), "-r", str(eta), "-l", str(l2)]
        cmd += ["-t", str(iters), "-s", "1"]
        if auto_stop:
            cmd += ["-p", str(self.tmp / "va.txt"), "--auto-stop"]
        subprocess.run(
            [*cmd, str(self.tmp / "tr.txt"), str(model)],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=self.tmp,  # ffm-train writes its tr.txt.bin / va.txt.bin cache here
        )

        def predict(which: str) -> npt.NDArray[np.float64]:
            out = self.tmp / f"libffm-{self.runs}.{which}.out"
            src = self.tmp / ("va.txt" if which == "valid" else "te.txt")
            subprocess.run(
                [str(self.bindir / "ffm-predict"), str(src), str(model), str(out)],
                check=True,
                stdout=subprocess.DEVNULL,
                cwd=self.tmp,
            )
            return np.loadtxt(out, dtype=np.float64)

        return predict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("BIDSCORE_TUNE_DATA", "/work/shared/data/criteo-libffm-sample")
    parser.add_argument("--data", type=Path, default=Path(default))
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--libffm", type=Path, default=None, help="dir with ffm-train")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        how = prepare(args.data, tmp, args.seed, args.rows)
        train, valid, test = (
            rust_core.Dataset.from_libffm(tmp / f) for f in ("tr.txt", "va.txt", "te.txt")
        )
        yv, yt = valid.labels.astype(np.float64), test.labels.astype(np.float64)
        print(f"machine: {machine()}")
        print(f"data: {args.data} ({how})")
        print(
            f"rows: {train.num_rows} train / {valid.num_rows} valid / {test.num_rows} test,"
            f" {train.num_fields} fields; positives {int(train.labels.sum())} /"
            f" {int(yv.sum())} / {int(yt.sum())}"
        )

        def rc(m: rust_core.Model) -> Predict:
            return lambda which: m.predict(valid if which == "valid" else test).astype(np.float64)

        models: dict[str, Predict] = {}
        models["bidscore defaults (= LIBFFM defaults, 15 it.)"] = rc(
            rust_core.train_ffm(train, **LIBFFM_DEFAULTS)
        )
        models["LIBFFM defaults + auto-stop (rust_core linear=False)"] = rc(
            rust_core.train_ffm(
                train,
                valid,
                **(LIBFFM_DEFAULTS | {"epochs": MAX_ITER}),
                auto_stop=True,
                linear=False,
            )
        )
        grid = list(itertools.product(*GRID.values()))
        best: tuple[float, str, Predict] | None = None
        t0 = time.perf_counter()
        for k, eta, l2 in grid:
            m = rust_core.train_ffm(
                train, valid, k=k, eta=eta, l2=l2, epochs=MAX_ITER, auto_stop=True, linear=False
            )
            score = logloss(yv, m.predict(valid))
            if best is None or score < best[0]:
                best = (score, f"k={k} eta={eta} lambda={l2}, {m.best_epoch} it.", rc(m))
        assert best is not None
        models[f"LIBFFM best grid (rust_core linear=False; {best[1]})"] = best[2]
        grid_s = time.perf_counter() - t0
        real_s = 0.0
        if args.libffm is not None:
            real = RealLibffm(args.libffm, tmp)
            d = LIBFFM_DEFAULTS
            models["real LIBFFM defaults, 15 it."] = real.train(
                k=4, eta=0.2, l2=2e-5, iters=15, auto_stop=False
            )
            models["real LIBFFM defaults + auto-stop"] = real.train(
                k=int(d["k"]),
                eta=float(d["eta"]),
                l2=float(d["l2"]),
                iters=MAX_ITER,
                auto_stop=True,
            )
            t0 = time.perf_counter()
            rbest: tuple[float, str, Predict] | None = None
            for k, eta, l2 in grid:
                p = real.train(k=k, eta=eta, l2=l2, iters=MAX_ITER, auto_stop=True)
                score = logloss(yv, p("valid"))
                if rbest is None or score < rbest[0]:
                    rbest = (score, f"k={k} eta={eta} lambda={l2}", p)
            assert rbest is not None
            models[f"real LIBFFM best grid ({rbest[1]})"] = rbest[2]
            real_s = time.perf_counter() - t0
        tuned_names: list[str] = []
        tune_s: list[str] = []
        for linear in (True, False):
            t0 = time.perf_counter()
            result = tune_ffm(train, valid, trials=args.trials, seed=args.seed, linear=linear)
            shown = " ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in result.params.items()
                if k != "auto_stop"
            )
            tuned_names.append(f"tune_ffm {args.trials} trials ({shown})")
            models[tuned_names[-1]] = rc(result.model)
            states = [t.state for t in result.trials]
            tune_s.append(
                f"{time.perf_counter() - t0:.0f} ({states.count('complete')} complete,"
                f" {states.count('pruned')} pruned)"
            )
        print(
            f"seconds: rust_core grid {grid_s:.0f} ({len(grid)} configs), real LIBFFM grid"
            f" {real_s:.0f}, tune_ffm {tune_s[0]}, tune_ffm linear=False {tune_s[1]}"
        )
        preds = {name: (p("valid"), p("test")) for name, p in models.items()}
    width = max(len(n) for n in preds)
    print(f"{'configuration':<{width}} {'valid ll':>9} {'test ll':>9} {'test auc':>9}")
    for name, (pv, pt) in preds.items():
        t = evaluate(yt, pt)
        print(f"{name:<{width}} {logloss(yv, pv):9.5f} {t.logloss:9.5f} {t.auc:9.5f}")
    print(
        "bootstrap 95% intervals of the test difference, tune_ffm minus each"
        " (logloss: < 0 is better; AUC: > 0 is better):"
    )
    for tuned_name in tuned_names:
        print(f" {tuned_name}:")
        tuned = preds[tuned_name][1]
        for name, (_, pt) in preds.items():
            if name == tuned_name:
                continue
            (lo, hi), (alo, ahi) = bootstrap(yt, tuned, pt)
            print(
                f"  vs {name[:56]:<56} logloss [{lo:+.5f}, {hi:+.5f}]  auc [{alo:+.5f}, {ahi:+.5f}]"
            )
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
