"""How serving cost grows with work.

1. candidates per request (1, 5, 20, 100; models ctr + cvr) and
2. models per request (1, 2, 4; 10 candidates): ghz against bidscore with 2 workers, p50/p99/QPS;
3. scoring time against model size (hash bits 18..24): in-process, the server's own scoring
   path (`ServingFeatures.score_bytes`: Python features + rust_core.Scorer), no gRPC.

Writes bench/results/scale-<date>.json.

    .venv/bin/python bench/scale.py                 # 5 s per ghz point
    .venv/bin/python bench/scale.py --parts size    # only the model-size sweep
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from google.protobuf import json_format  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import rust_core  # noqa: E402
from bench import models as bench_models  # noqa: E402
from bench.scale_specs import SPECS as SCALE_SPECS  # noqa: E402
from bidscore.v1 import scorer_pb2  # noqa: E402
from control import datagen  # noqa: E402
from control.loadtest import generated_payloads, local_server, run_loadtest  # noqa: E402
from features.bid import CTR, CVR  # noqa: E402
from features.spec import ModelSpec  # noqa: E402
from pyserver.serving_features import ServingFeatures  # noqa: E402

RESULTS = REPO / "bench" / "results"
CANDIDATES = (1, 5, 20, 100)
MODEL_SETS = (("ctr",), ("ctr", "cvr"), ("ctr", "cvr", "ctr_b", "cvr_b"))
# Wide enough for the whole table in a log file or a narrow terminal.
console = Console(width=160)


def ghz_sweeps(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bidscore-scale-") as tmp:
        home = Path(tmp)
        os.environ["BIDSCORE_HOME"] = str(home)
        for var in ("BIDSCORE_REGISTRY", "BIDSCORE_STORE"):
            os.environ.pop(var, None)
        os.environ["PYTHONPATH"] = str(REPO)  # the server imports bench.scale_specs
        console.print("[dim]training ctr, cvr, ctr_b, cvr_b[/dim]")
        bench_models.publish(home, SCALE_SPECS, versions=1)
        points = [("candidates", c, ("ctr", "cvr")) for c in CANDIDATES]
        points += [("models", len(m), m) for m in MODEL_SETS]
        with local_server(
            tuple(SCALE_SPECS), workers=2, specs="bench.scale_specs:SPECS", ready_timeout_s=240
        ) as server:
            for sweep, value, models in points:
                candidates = value if sweep == "candidates" else 10
                payloads = generated_payloads(200, seed=5, candidates=candidates, models=models)
                # Warm-up run first (untallied), as in bench/serving.py.
                shape = {"connections": args.connections, "call_timeout_s": 20.0}
                run_loadtest(server.target, payloads, 1.0, args.concurrency, **shape)
                report = run_loadtest(
                    server.target, payloads, args.duration, args.concurrency, **shape
                )
                rows.append(
                    {
                        "sweep": sweep,
                        "candidates": candidates,
                        "models": list(models),
                        **report.to_json(),
                        "scores_per_s": report.qps * candidates * len(models),
                    }
                )
                console.print(f"[dim]{sweep}={value}: {report.qps:,.0f} QPS[/dim]")
    return rows


def size_sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    table = datagen.generate(2000, seed=9)
    payloads = generated_payloads(500, seed=6, candidates=10, models=[])
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bidscore-size-") as tmp:
        for base, bits_list in ((CVR, args.lr_bits), (CTR, args.ffm_bits)):
            for bits in bits_list:
                spec = ModelSpec(
                    base.name, base.schema, base.fields, bits=bits, seed=base.seed,
                    algorithm=base.algorithm,
                )  # fmt: skip
                model = bench_models.train(spec, table, seed=1, epochs=1)
                path = Path(tmp) / f"{spec.name}-{bits}.model"
                model.save(str(path))
                del model
                mapped = rust_core.load_model(str(path))
                serving = ServingFeatures([spec])
                scorer = rust_core.Scorer(serving.plan, {spec.name: (mapped, "1")})
                requests = [
                    json_format.ParseDict(
                        {**p, "models": [spec.name]}, scorer_pb2.ScoreRequest()
                    ).SerializeToString()
                    for p in payloads
                ]
                micros = _time_calls(serving, scorer, requests, args.calls)
                rows.append(
                    {
                        "algorithm": spec.algorithm,
                        "bits": bits,
                        "file_mb": path.stat().st_size / 2**20,
                        "p50_us": float(np.percentile(micros, 50)),
                        "p99_us": float(np.percentile(micros, 99)),
                        "mean_us": float(micros.mean()),
                        "candidates": 10,
                    }
                )
                console.print(
                    f"[dim]{spec.algorithm} bits={bits}: p50 {rows[-1]['p50_us']:.0f} us[/dim]"
                )
                del scorer, mapped
                path.unlink()
    return rows


def _time_calls(
    serving: ServingFeatures, scorer: rust_core.Scorer, requests: list[bytes], calls: int
) -> np.ndarray:
    for request in requests[:50]:  # warm the code paths, not the whole model
        serving.score_bytes(scorer, request)
    out = np.empty(calls)
    for i in range(calls):
        request = requests[i % len(requests)]
        start = time.perf_counter_ns()
        serving.score_bytes(scorer, request)
        out[i] = (time.perf_counter_ns() - start) / 1000
    return out


def print_tables(ghz_rows: list[dict[str, Any]], size_rows: list[dict[str, Any]]) -> None:
    if ghz_rows:
        t = Table(title="bidscore, 2 workers: cost vs work per request")
        for h in ("candidates", "models", "QPS", "scores/s", "p50 ms", "p99 ms", "errors"):
            t.add_column(h, justify="right")
        for r in ghz_rows:
            t.add_row(
                str(r["candidates"]), str(len(r["models"])), f"{r['qps']:,.0f}",
                f"{r['scores_per_s']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                str(sum(r["errors"].values())),
            )  # fmt: skip
        console.print(t)
    if size_rows:
        t = Table(title="in-process scoring time vs model size (10 candidates, 1 model)")
        for h in ("algorithm", "bits", "file MB", "p50 us", "p99 us", "mean us"):
            t.add_column(h, justify="right")
        for r in size_rows:
            t.add_row(
                r["algorithm"], str(r["bits"]), f"{r['file_mb']:,.1f}", f"{r['p50_us']:.0f}",
                f"{r['p99_us']:.0f}", f"{r['mean_us']:.0f}",
            )  # fmt: skip
        console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--parts", default="ghz,size", help="ghz, size, or both")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per ghz point")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--connections", type=int, default=8, help="spread over both workers")
    parser.add_argument("--calls", type=int, default=5000, help="timed calls per model size")
    parser.add_argument(
        "--lr-bits", type=lambda s: [int(b) for b in s.split(",")], default=[18, 20, 22, 24]
    )
    parser.add_argument(
        "--ffm-bits", type=lambda s: [int(b) for b in s.split(",")], default=[18, 20, 22]
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    ghz_rows = ghz_sweeps(args) if "ghz" in parts else []
    size_rows = size_sweep(args) if "size" in parts else []
    print_tables(ghz_rows, size_rows)
    load = os.getloadavg()
    console.print(
        f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    out = args.out or RESULTS / f"scale-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "connections": args.connections,
            "workers": 2,
        },
        "machine": {"cores": os.cpu_count(), "loadavg": list(load)},
        "per_request": ghz_rows,
        "model_size": size_rows,
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
