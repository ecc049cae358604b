"""`tune_ffm` on real CTR data against LIBFFM's configurations, all trained by rust_core (whose
FFM is LIBFFM's algorithm: AdaGrad, instance normalisation, the same defaults).

Data: /work/shared/data/criteo-libffm-sample (xlearn's Criteo demo in libffm format):
small_train.txt is split (seeded, 75/25) into train and validation; small_test.txt is the
test set. Compared on the test set, each chosen on the validation rows only:

- bidscore defaults = LIBFFM's published defaults (k=4, eta=0.2, lambda=2e-5, 15 iterations,
  normalisation on), trained on train;
- LIBFFM defaults with `--auto-stop` on the validation rows (LIBFFM's recommended use);
- LIBFFM best configuration: the grid of LIBFFM command-line settings k x eta x lambda with
  auto-stop, the one with the lowest validation logloss;
- tune_ffm, 30 trials (seeded).

The test set has 200 rows: the script prints bootstrap 95% intervals of the differences,
which are wide; read them before reading the point estimates.

    .venv/bin/python bench/tune_criteo.py [--data DIR] [--trials 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

import rust_core
from control.metrics import evaluate
from control.tuning import tune_ffm

LIBFFM_DEFAULTS = {"k": 4, "eta": 0.2, "l2": 2e-5, "epochs": 15, "normalize": True}
GRID = {"k": (4, 8, 16), "eta": (0.02, 0.05, 0.1, 0.2), "l2": (2e-5, 2e-4, 1e-3)}


def split(train_file: Path, tmp: Path, seed: int) -> tuple[rust_core.Dataset, rust_core.Dataset]:
    lines = train_file.read_text().splitlines()
    held = np.random.default_rng(seed).random(len(lines)) < 0.25
    (tmp / "tr.txt").write_text("\n".join(x for x, h in zip(lines, held, strict=True) if not h))
    (tmp / "va.txt").write_text("\n".join(x for x, h in zip(lines, held, strict=True) if h))
    return rust_core.Dataset.from_libffm(tmp / "tr.txt"), rust_core.Dataset.from_libffm(
        tmp / "va.txt"
    )


def valid_logloss(model: rust_core.Model, ds: rust_core.Dataset) -> float:
    return evaluate(ds.labels.astype(np.float64), model.predict(ds)).logloss


def bootstrap(
    y: npt.NDArray[np.float64], a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """95% intervals of logloss(a) - logloss(b) and auc(a) - auc(b) over resampled rows."""
    rng = np.random.default_rng(0)
    dl, da = [], []
    for _ in range(1000):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() == y[i].max():
            continue
        ma, mb = evaluate(y[i], a[i]), evaluate(y[i], b[i])
        dl.append(ma.logloss - mb.logloss)
        da.append(ma.auc - mb.auc)
    q = (2.5, 97.5)
    lo, hi = np.percentile(dl, q)
    alo, ahi = np.percentile(da, q)
    return (float(lo), float(hi)), (float(alo), float(ahi))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/criteo-libffm-sample"))
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train, valid = split(args.data / "small_train.txt", Path(tmp), args.seed)
    test = rust_core.Dataset.from_libffm(args.data / "small_test.txt")
    y = test.labels.astype(np.float64)
    print(
        f"data: {train.num_rows} train / {valid.num_rows} valid / {test.num_rows} test rows,"
        f" {train.num_fields} fields; test positives {int(y.sum())}"
    )
    models: dict[str, rust_core.Model] = {}
    models["bidscore defaults = LIBFFM defaults, 15 it."] = rust_core.train_ffm(
        train, **LIBFFM_DEFAULTS
    )
    models["LIBFFM defaults + auto-stop"] = rust_core.train_ffm(
        train, valid, **(LIBFFM_DEFAULTS | {"epochs": 50}), auto_stop=True
    )
    best: tuple[float, str, rust_core.Model] | None = None
    for k, eta, l2 in itertools.product(*GRID.values()):
        m = rust_core.train_ffm(train, valid, k=k, eta=eta, l2=l2, epochs=50, auto_stop=True)
        score = valid_logloss(m, valid)
        if best is None or score < best[0]:
            best = (score, f"k={k} eta={eta} lambda={l2}", m)
    assert best is not None
    models[f"LIBFFM best grid config ({best[1]})"] = best[2]
    result = tune_ffm(train, valid, trials=args.trials, seed=args.seed)
    shown = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.params.items()
    )
    models[f"tune_ffm {args.trials} trials ({shown})"] = result.model
    tuned = result.model.predict(test)
    print(f"{'configuration':<90} {'valid ll':>9} {'test ll':>9} {'test auc':>9}")
    for name, m in models.items():
        t = evaluate(y, m.predict(test))
        print(f"{name:<90} {valid_logloss(m, valid):9.5f} {t.logloss:9.5f} {t.auc:9.5f}")
    print("bootstrap 95% intervals, tune_ffm minus each (logloss: < 0 is better; AUC: > 0):")
    for name, m in list(models.items())[:-1]:
        (lo, hi), (alo, ahi) = bootstrap(y, tuned, m.predict(test))
        print(f"  vs {name[:60]:<60} logloss [{lo:+.4f}, {hi:+.4f}]  auc [{alo:+.4f}, {ahi:+.4f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
