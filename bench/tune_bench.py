"""`control tune` benchmark: what pruning saves. The same search (same seed, same trials,
same data) runs twice in this process, with Optuna's median pruner fed by rust_core's
per-epoch validation logloss and without pruning; prints wall and CPU seconds of each, their
ratio, epochs trained, and the chosen model's validation and test logloss/AUC.

Data: generated bid logs (control.datagen, planted FFM) tokenised for the production ctr
spec's fields at 2^14 buckets (the production 2^18 makes 100+ MB models per trial).

    .venv/bin/python bench/tune_bench.py [--rows 40000] [--trials 30] [--quick]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import resource
import sys
import time
from typing import Any

import numpy as np

import rust_core
from bench.machine import machine
from control.datagen import generate
from control.metrics import evaluate
from control.tuning import tune_ffm
from features.bid import CTR, BidRequest
from features.spec import ModelSpec
from features.tokenize import tokenize_table


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def datasets(rows: int, seed: int) -> tuple[rust_core.Dataset, ...]:
    spec = ModelSpec("ctr", BidRequest, CTR.fields, bits=14, seed=CTR.seed)
    table = generate(rows, seed)
    a, b = int(rows * 0.7), int(rows * 0.85)
    parts = (table.slice(0, a), table.slice(a, b - a), table.slice(b))
    return tuple(tokenize_table(t, spec, "click") for t in parts)


def scores(model: rust_core.Model, ds: rust_core.Dataset) -> tuple[float, float]:
    m = evaluate(ds.labels.astype(np.float64), model.predict(ds))
    return m.logloss, m.auc


def run(prune: bool, args: argparse.Namespace, data: tuple[rust_core.Dataset, ...]) -> Any:
    train, valid, test = data
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = tune_ffm(train, valid, trials=args.trials, seed=args.seed, prune=prune)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {
        "result": result,
        "wall": wall,
        "cpu": cpu,
        "epochs": sum(t.epochs for t in result.trials),
        "pruned": sum(t.state == "pruned" for t in result.trials),
        "test": scores(result.model, test),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="8,000 rows, 10 trials")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.trials = 8000, 10
    data = datasets(args.rows, seed=1)
    print(f"machine: {machine()}")
    print(
        f"data: generated, {data[0].num_rows} train / {data[1].num_rows} valid /"
        f" {data[2].num_rows} test rows, {data[0].num_fields} fields, 2^14 buckets;"
        f" {args.trials} trials, seed {args.seed}, threads 1, workers 1"
    )
    runs = {name: run(name == "pruned", args, data) for name in ("unpruned", "pruned")}
    print(
        f"{'search':<10} {'wall s':>8} {'cpu s':>8} {'epochs':>7} {'pruned':>7}"
        f" {'valid ll':>9} {'test ll':>9} {'test auc':>9}"
    )
    for name, r in runs.items():
        print(
            f"{name:<10} {r['wall']:8.2f} {r['cpu']:8.2f} {r['epochs']:7d} {r['pruned']:7d}"
            f" {r['result'].valid_logloss:9.5f} {r['test'][0]:9.5f} {r['test'][1]:9.5f}"
        )
    wall = runs["pruned"]["wall"] / runs["unpruned"]["wall"]
    cpu = runs["pruned"]["cpu"] / runs["unpruned"]["cpu"]
    print(
        f"pruned / unpruned: wall {wall:.3f} (saves {1 - wall:.0%}), cpu {cpu:.3f}"
        f" (saves {1 - cpu:.0%}); target: saves >= 40%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
