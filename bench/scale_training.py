"""Training past one process (issue 18): how fast each piece runs on this machine.

1. preparation (read + tokenise + profile + write a CSR shard per file): rows/s in this
   process (`--executor local`) vs Ray tasks with 1 and 2 CPUs; and rows per task-CPU-second,
   the per-core rate docs/scale.md's arithmetic uses;
2. training rates per core (threads=1) of LR and FFM on the prepared rows, row-epochs/s;
3. out-of-core vs in-memory training row-epochs/s, through `bench.out_of_core.measure` (the
   out-of-core engineer's benchmark; reported as missing when it is not merged);
4. two models' `control train` at once (`--model ctr --model ctr_b`: a balanced pair, the twin
   spec of bench/scale_specs.py) vs the same two commands one after the other: wall and CPU.

Ratios come from one run; absolute figures and the machine are printed beside them. The
machine may be shared: CPU-time figures are steadier than wall-clock ones.
Writes bench/results/scale_training-<date>.json.

    .venv/bin/python bench/scale_training.py                   # 4 days x 50k rows
    .venv/bin/python bench/scale_training.py --rows 20000      # quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import rust_core  # noqa: E402
from bidscore.store import open_store  # noqa: E402
from control.datagen import write_dataset  # noqa: E402
from control.scale.prepare import cleanup, load_csr, prepare  # noqa: E402
from features.bid import CTR  # noqa: E402

RESULTS = REPO / "bench" / "results"
console = Console(width=160)


def machine() -> dict[str, Any]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "loadavg": list(os.getloadavg())}


def _prepare_once(data: Path, store_dir: Path, ray: Any | None) -> dict[str, Any]:
    store = open_store(f"file://{store_dir}")
    started = time.perf_counter()
    prepared = prepare([data], "ctr", store=store, ray=ray)
    wall = time.perf_counter() - started
    out = {
        "rows": prepared.rows,
        "shards": len(prepared.index.shards),
        "wall_s": wall,
        "task_cpu_s": prepared.cpu_seconds,
        "rows_per_s": prepared.rows / wall,
        "rows_per_cpu_s": prepared.rows / prepared.cpu_seconds,
    }
    cleanup(prepared, store)
    return out


def preparation(data: Path, tmp: Path) -> dict[str, Any]:
    _prepare_once(data, tmp / "prep-warm-local", None)  # imports and page cache, as below
    results: dict[str, Any] = {"local": _prepare_once(data, tmp / "prep-local", None)}
    import ray  # noqa: PLC0415

    for cpus in (1, 2):
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR")
        try:
            # One warm-up task per worker: worker start-up is Ray's fixed cost, not ours.
            _prepare_once(data, tmp / f"prep-warm-{cpus}", ray)
            results[f"ray_{cpus}"] = _prepare_once(data, tmp / f"prep-ray-{cpus}", ray)
        finally:
            ray.shutdown()
    return results


def training_rates(data: Path, tmp: Path) -> dict[str, Any]:
    store = open_store(f"file://{tmp / 'train-rates'}")
    prepared = prepare([data], "ctr", store=store)
    rows = load_csr(prepared.index)
    dataset = rows.dataset(weighted=False)
    out: dict[str, Any] = {}
    for algo, trainer in (("lr", rust_core.train_lr), ("ffm", rust_core.train_ffm)):
        epochs = 2
        started = time.process_time()
        wall = time.perf_counter()
        trainer(
            dataset,
            None,
            epochs=epochs,
            threads=1,
            seed=0,
            bits=CTR.bits,
            fingerprint=CTR.fingerprint,
        )
        cpu = time.process_time() - started
        out[algo] = {
            "rows": rows.rows,
            "epochs": epochs,
            "wall_s": time.perf_counter() - wall,
            "cpu_s": cpu,
            "row_epochs_per_cpu_s": rows.rows * epochs / cpu,
        }
    out["bytes_per_row"] = (
        rows.indptr.nbytes + rows.fields.nbytes + rows.indices.nbytes + rows.values.nbytes
    ) / rows.rows + 4
    cleanup(prepared, store)
    return out


def out_of_core(rows: int) -> dict[str, Any]:
    try:
        from bench.out_of_core import measure  # noqa: PLC0415 - the ooc branch's benchmark
    except ImportError as exc:
        return {"missing": f"bench.out_of_core.measure is not available here ({exc})"}
    result: dict[str, Any] = measure(rows)
    return result


def _control(*args: str, env: dict[str, str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "control", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        console.print(done.stderr[-2000:])
    return wall, cpu, done.returncode


_SPIN = "import time\nend = time.process_time() + {0}\nwhile time.process_time() < end: pass\n"


def machine_parallelism(seconds: float = 2.0) -> float:
    """Wall time of two CPU-bound processes at once / one after the other, right now: ~0.5
    on an idle 2-core machine, ~1.0 when no second core is free (the bound for the 2-model
    ratio below)."""
    code = _SPIN.format(seconds)
    started = time.perf_counter()
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], check=True)
    sequential = time.perf_counter() - started
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    for p in procs:
        p.wait()
    return (time.perf_counter() - started) / sequential


def parallel_models(data: Path, tmp: Path, algo: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIDSCORE_")}
    env |= {"PYTHONPATH": str(REPO), "BIDSCORE_HOME": str(tmp / "home"), "COLUMNS": "160"}
    common = ["--data", str(data), "--algo", algo, "--epochs", "2", "--threads", "1", "--specs",
              "bench.scale_specs:SPECS", "--json"]  # fmt: skip
    seq_wall = seq_cpu = 0.0
    for i, model in enumerate(("ctr", "ctr_b")):
        wall, cpu, code = _control(
            "train", "--model", model, *common, "--registry",
            f"sqlite:///{tmp / f'seq{i}.db'}", env=env,
        )  # fmt: skip
        assert code == 0
        seq_wall, seq_cpu = seq_wall + wall, seq_cpu + cpu
    par_wall, par_cpu, code = _control(
        "train", "--model", "ctr", "--model", "ctr_b", *common, "--executor", "local",
        "--registry", f"sqlite:///{tmp / 'par.db'}", env=env,
    )  # fmt: skip
    assert code == 0
    return {
        "algo": algo,
        "sequential_wall_s": seq_wall,
        "sequential_cpu_s": seq_cpu,
        "parallel_wall_s": par_wall,
        "parallel_cpu_s": par_cpu,
        "ratio": par_wall / seq_wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows per day")
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--parallel-algo", default="ffm", choices=("ffm", "lr"))
    args = parser.parse_args()
    info = machine()
    console.print(
        f"machine: {info['cores']} cores, {info['cpu']}, load average "
        + " ".join(f"{x:.2f}" for x in info["loadavg"])
        + " (shared: wall-clock figures are noisy, CPU figures steadier)"
    )
    with tempfile.TemporaryDirectory(prefix="bidscore-scale-training-") as name:
        tmp = Path(name)
        data = tmp / "logs"
        write_dataset(data, rows=args.rows, seed=7, days=args.days)
        prep = preparation(data, tmp)
        rates = training_rates(data, tmp)
        ooc = out_of_core(args.rows * args.days)
        spare = machine_parallelism()
        par = parallel_models(data, tmp, args.parallel_algo)
        spare_after = machine_parallelism()

    table = Table(title="preparation (read, tokenise, profile, write shard), ctr")
    for col in ("executor", "rows", "wall s", "rows/s", "task CPU s", "rows/CPU-s", "vs local"):
        table.add_column(col, justify="right")
    base = prep["local"]["rows_per_s"]
    for name, r in prep.items():
        table.add_row(
            name, f"{r['rows']:,}", f"{r['wall_s']:.2f}", f"{r['rows_per_s']:,.0f}",
            f"{r['task_cpu_s']:.2f}", f"{r['rows_per_cpu_s']:,.0f}",
            f"{r['rows_per_s'] / base:.2f}x",
        )  # fmt: skip
    console.print(table)
    table = Table(title="training, threads=1")
    for col in ("algo", "rows", "epochs", "CPU s", "row-epochs/CPU-s"):
        table.add_column(col, justify="right")
    for algo in ("lr", "ffm"):
        r = rates[algo]
        table.add_row(
            algo, f"{r['rows']:,}", str(r["epochs"]), f"{r['cpu_s']:.2f}",
            f"{r['row_epochs_per_cpu_s']:,.0f}",
        )  # fmt: skip
    console.print(table)
    console.print(f"CSR bytes per row in memory: {rates['bytes_per_row']:.0f}")
    console.print(f"out-of-core vs in-memory: {ooc}")
    console.print(
        f"two models ({par['algo']}) at once vs one after the other: wall"
        f" {par['parallel_wall_s']:.1f}s vs {par['sequential_wall_s']:.1f}s ="
        f" {par['ratio']:.2f}x (target <= 0.65x); CPU {par['parallel_cpu_s']:.1f}s vs"
        f" {par['sequential_cpu_s']:.1f}s"
    )
    console.print(
        f"machine parallelism now (two CPU-bound processes at once / in turn): {spare:.2f}x"
        f" before, {spare_after:.2f}x after (0.5x = an idle second core)"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"scale_training-{dt.date.today().isoformat()}.json"
    out.write_text(
        json.dumps(
            {
                "machine": info,
                "rows_per_day": args.rows,
                "days": args.days,
                "preparation": prep,
                "training": rates,
                "out_of_core": ooc,
                "parallel_models": par,
                "machine_parallelism": [spare, spare_after],
            },
            indent=1,
        )
        + "\n"
    )
    console.print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
