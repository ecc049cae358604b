"""Serving benchmark: one run, the same payloads and ghz settings for every server.

Servers, each on 127.0.0.1 with a fresh process, stopped before the next starts:
  echo      grpc.aio on uvloop replying a constant (the ceiling for a Python gRPC server)
  sklearn   LogisticRegression.predict_proba on a sparse row built per request (the old way)
  bidscore  python -m control serve with ctr (FFM) + cvr (LR), 1 and 2 workers, and 2 workers while
            the production alias of both models moves every 2 s
Stream rows (ScoreStream, loaded by tools/streamload, per-message latency; QPS = messages/s):
  echo-stream      the echo server's ScoreStream (the ceiling of the stream path)
  bidscore-stream  1 and 2 workers, closed loop; then 2 workers open loop at half the closed
                   loop's rate (p99 at a sustainable load)
  Stream rows restart streamload until its connections are spread evenly over the workers
  (--stream-spread even; SO_REUSEPORT places connections, not streams, by a hash).
The load generators share the machine with the server. streamload's Go scheduler runs on one
core (--streamload-cpus 1), so that its idle threads do not spin on the server's; ghz keeps all
cores (--ghz-cpus 0): on one, ghz itself would cap the echo server's unary rate.
Prints one table (QPS, mean, p50, p95, p99, errors, server CPU s per 1,000 calls or messages,
connections per worker and each worker's CPU)
and the ratios against echo and sklearn at the same worker count, and writes
bench/results/serving-<date>.json.

    .venv/bin/python bench/serving.py                  # 10 s per server, 16 calls in flight
    .venv/bin/python bench/serving.py --duration 3     # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import models as bench_models  # noqa: E402
from bench.placement import (  # noqa: E402
    connections_per_process,
    is_even,
    listening,
    spread,
)
from bench.proc_cpu import (  # noqa: E402
    children_cpu_seconds,
    cpu_seconds,
    descendants,
    tree_cpu_seconds,
)
from bidscore.registry import open_registry  # noqa: E402
from control.loadtest import generated_payloads, local_server, run_loadtest  # noqa: E402
from control.loadtest.ghz import find_ghz, ghz_version  # noqa: E402
from control.loadtest.local_server import free_port  # noqa: E402
from control.loadtest.server_process import ServerProcess, server_process  # noqa: E402
from control.loadtest.stream import StreamSettings, run_stream_loadtest  # noqa: E402
from features.bid import SPECS  # noqa: E402

RESULTS = REPO / "bench" / "results"
ALIAS_MOVE_SECONDS = 2.0
# Open-loop stream rows: messages outstanding per stream before the client counts a backlog.
OPEN_LOOP_CAP = 4096
# --stream-spread even: streamload starts at most this often before a row keeps an uneven
# spread (a 4-connection, 2-worker start is uneven 10 times in 16: (10/16)**30 < 1e-6).
MAX_LAUNCHES = 30
# How often a row looks at which worker holds each connection.
SPREAD_SAMPLE_SECONDS = 0.5
# Wide enough for the whole table in a log file or a narrow terminal.
console = Console(width=160)


@dataclass
class Row:
    name: str
    workers: int
    qps: float
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    errors: dict[str, int]
    count: int
    server_cpu_s_per_1k: float
    ghz_cpu_s_per_1k: float
    loadavg_1m: float
    alias_moves: int = 0
    streams: int = 0  # 0: unary calls (ghz); else ScoreStream over this many streams
    rps: int = 0
    # Client connections per worker ("2+2", "3+1"): SO_REUSEPORT places connections, not calls.
    spread: str = ""
    # Server CPU seconds of each worker during the run, busiest first.
    worker_cpu_s: list[float] = field(default_factory=list)
    # Stream rows: streamload starts until its connections were spread evenly (see --stream-spread).
    launches: int = 0


def reference_server(module: str, workers: int) -> AbstractContextManager[ServerProcess]:
    port = free_port()
    command = [sys.executable, "-m", module, "--port", str(port), "--workers", str(workers)]
    return server_process(command, f"127.0.0.1:{port}", cwd=REPO, ready_timeout_s=120)


def bidscore_server(workers: int) -> AbstractContextManager[ServerProcess]:
    return local_server(("ctr", "cvr"), workers=workers, ready_timeout_s=180)


@contextmanager
def alias_mover(home: Path, versions: dict[str, list[str]]) -> Iterator[list[int]]:
    """Flip `production` of every model between its versions every 2 s; yields [moves]."""
    registry = open_registry(bench_models.registry_url(home))
    stop = threading.Event()
    moves = [0]

    def run() -> None:
        turn = 0
        while not stop.wait(ALIAS_MOVE_SECONDS):
            turn += 1
            for name, names in versions.items():
                current = registry.get_alias(name, "production")
                registry.set_alias(
                    name,
                    "production",
                    names[turn % len(names)],
                    expected_generation=current.generation if current else 0,
                    actor="bench",
                    reason="alias-move benchmark",
                )
            moves[0] += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield moves
    finally:
        stop.set()
        thread.join()


def measure(
    name: str,
    workers: int,
    start: Callable[[], AbstractContextManager[ServerProcess]],
    payloads: list[dict[str, Any]],
    args: argparse.Namespace,
    during: Callable[[], AbstractContextManager[list[int]]] | None = None,
    stream_rps: int | None = None,
) -> Row:
    started = time.monotonic()
    with start() as server:
        console.print(f"[dim]{name}: serving after {time.monotonic() - started:.1f} s[/dim]")
        time.sleep(args.settle)
        port = int(server.target.rsplit(":", 1)[1])
        pids = listening(descendants(server.pid), port) or [server.pid]
        # A separate warm-up run instead of ghz --skipFirst: ghz divides the tallied calls by
        # the whole run's time, skipped part included, which would bias QPS against slow servers.
        if stream_rps is not None:
            settings = StreamSettings(
                duration_s=args.warmup,
                streams=args.streams,
                in_flight=args.stream_in_flight,
                connections=args.streams,
                cpus=args.streamload_cpus,
            )
            run_stream_loadtest(server.target, payloads, settings)
        else:
            run_loadtest(server.target, payloads, args.warmup, args.concurrency, cpus=args.ghz_cpus)
        loadavg = os.getloadavg()[0]
        base: dict[str, Any] = {}

        def baseline() -> None:
            # A restarted streamload's connections close first, so that neither the spread
            # check nor the sampler counts them.
            deadline = time.monotonic() + 2.0
            while sum(connections_per_process(pids, port).values()) and time.monotonic() < deadline:
                time.sleep(0.01)
            seen.clear()
            base["cpu"], base["ghz"] = tree_cpu_seconds(server.pid), children_cpu_seconds()
            base["workers"] = [cpu_seconds(pid) for pid in pids]
            base["launches"] = base.get("launches", 0) + 1

        def placed() -> bool | None:
            counts = connections_per_process(pids, port)
            if sum(counts.values()) < args.streams:
                return None  # not every connection is up yet
            return is_even(counts)

        seen: list[dict[int, int]] = []
        with during() if during else _nothing() as moves, _spread_sampler(pids, port, seen):
            if stream_rps is not None:
                settings = StreamSettings(
                    duration_s=args.duration,
                    streams=args.streams,
                    # Open loop: messages go out when due; the cap only bounds the client.
                    in_flight=args.stream_in_flight if not stream_rps else OPEN_LOOP_CAP,
                    connections=args.streams,
                    rps=stream_rps,
                    cpus=args.streamload_cpus,
                )
                report = run_stream_loadtest(
                    server.target,
                    payloads,
                    settings,
                    placement=placed if args.stream_spread == "even" else None,
                    on_launch=baseline,
                    max_launches=MAX_LAUNCHES,
                )
            else:
                baseline()
                report = run_loadtest(
                    server.target,
                    payloads,
                    args.duration,
                    args.concurrency,
                    connections=args.connections,
                    rps=args.rps,
                    cpus=args.ghz_cpus,
                )
        cpu1, ghz1 = tree_cpu_seconds(server.pid), children_cpu_seconds()
        worker_cpu = [cpu_seconds(pid) - b for pid, b in zip(pids, base["workers"], strict=True)]
    calls_k = max(report.count, 1) / 1000
    return Row(
        name=name,
        workers=workers,
        qps=report.qps,
        mean_ms=report.mean_ms,
        p50_ms=report.p50_ms,
        p95_ms=report.p95_ms,
        p99_ms=report.p99_ms,
        errors=report.errors,
        count=report.count,
        server_cpu_s_per_1k=(cpu1 - base["cpu"]) / calls_k,
        ghz_cpu_s_per_1k=(ghz1 - base["ghz"]) / calls_k,
        loadavg_1m=loadavg,
        alias_moves=moves[0],
        streams=args.streams if stream_rps is not None else 0,
        rps=stream_rps if stream_rps is not None else args.rps,
        spread=spread(seen[0]) if seen else "",
        worker_cpu_s=[round(v, 2) for v in sorted(worker_cpu, reverse=True)],
        launches=base["launches"] if stream_rps is not None else 0,
    )


@contextmanager
def _spread_sampler(pids: list[int], port: int, seen: list[dict[int, int]]) -> Iterator[None]:
    """Connections per worker during the block, into `seen`: the sample with the most."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(SPREAD_SAMPLE_SECONDS):
            counts = connections_per_process(pids, port)
            if not seen or sum(counts.values()) > sum(seen[0].values()):
                seen[:] = [counts]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def _nothing() -> Iterator[list[int]]:
    yield [0]


def ratios(rows: dict[str, Row]) -> dict[str, float | None]:
    def ratio(a: str, b: str, key: str = "qps") -> float | None:
        if a not in rows or b not in rows:
            return None
        top, bottom = getattr(rows[a], key), getattr(rows[b], key)
        return top / bottom if top is not None and bottom else None

    return {
        "bidscore_1w_over_echo_1w": ratio("bidscore-1w", "echo-1w"),
        "bidscore_2w_over_echo_2w": ratio("bidscore-2w", "echo-2w"),
        "bidscore_1w_over_sklearn_1w": ratio("bidscore-1w", "sklearn-1w"),
        "bidscore_2w_over_sklearn_2w": ratio("bidscore-2w", "sklearn-2w"),
        "alias_moves_p99_over_steady_p99": ratio(
            "bidscore-2w-alias-moves", "bidscore-2w", "p99_ms"
        ),
        # CPU per call is what QPS would follow on an idle machine: it does not depend on how
        # much of the two cores other processes (and ghz) took during the run.
        "server_cpu_per_call_bidscore_1w_over_echo_1w": ratio(
            "bidscore-1w", "echo-1w", "server_cpu_s_per_1k"
        ),
        "server_cpu_per_call_sklearn_1w_over_bidscore_1w": ratio(
            "sklearn-1w", "bidscore-1w", "server_cpu_s_per_1k"
        ),
        # ScoreStream against unary, at the same worker count.
        "stream_1w_over_unary_1w": ratio("bidscore-stream-1w", "bidscore-1w"),
        "stream_2w_over_unary_2w": ratio("bidscore-stream-2w", "bidscore-2w"),
        "stream_1w_over_echo_unary_1w": ratio("bidscore-stream-1w", "echo-1w"),
        "stream_2w_over_echo_unary_2w": ratio("bidscore-stream-2w", "echo-2w"),
        "stream_1w_over_echo_stream_1w": ratio("bidscore-stream-1w", "echo-stream-1w"),
        "stream_2w_over_echo_stream_2w": ratio("bidscore-stream-2w", "echo-stream-2w"),
        "server_cpu_per_auction_stream_1w_over_unary_1w": ratio(
            "bidscore-stream-1w", "bidscore-1w", "server_cpu_s_per_1k"
        ),
        "server_cpu_per_auction_stream_2w_over_unary_2w": ratio(
            "bidscore-stream-2w", "bidscore-2w", "server_cpu_s_per_1k"
        ),
    }


def targets(
    rows: dict[str, Row], r: dict[str, float | None], open_loop: bool
) -> dict[str, bool | None]:
    def at_least(value: float | None, bound: float) -> bool | None:
        # At a fixed --rps every server that keeps up shows the same QPS: no verdict.
        return None if value is None or open_loop else value >= bound

    steady = rows.get("bidscore-2w")
    moving = rows.get("bidscore-2w-alias-moves")
    half = rows.get("bidscore-stream-2w-half-rate")

    def at_most(value: float | None, bound: float) -> bool | None:
        return None if value is None else value <= bound

    cpu_ratios = [
        r["server_cpu_per_auction_stream_1w_over_unary_1w"],
        r["server_cpu_per_auction_stream_2w_over_unary_2w"],
    ]
    return {
        "unary qps >= 70% of echo (1 worker)": at_least(r["bidscore_1w_over_echo_1w"], 0.70),
        "unary qps >= 70% of echo (2 workers)": at_least(r["bidscore_2w_over_echo_2w"], 0.70),
        "stream msgs/s >= 3x unary (1 worker)": at_least(r["stream_1w_over_unary_1w"], 3.0),
        "stream msgs/s >= 3x unary (2 workers)": at_least(r["stream_2w_over_unary_2w"], 3.0),
        "stream msgs/s >= 2x echo unary (1 worker)": at_least(
            r["stream_1w_over_echo_unary_1w"], 2.0
        ),
        "stream msgs/s >= 2x echo unary (2 workers)": at_least(
            r["stream_2w_over_echo_unary_2w"], 2.0
        ),
        "stream CPU/auction <= 35% of unary": None
        if None in cpu_ratios
        else all(at_most(v, 0.35) for v in cpu_ratios),
        "stream p99 <= 5 ms at half max rate (2 workers)": None
        if half is None or half.p99_ms is None
        else half.p99_ms <= 5.0,
        "qps >= 85% of echo (2 workers)": at_least(r["bidscore_2w_over_echo_2w"], 0.85),
        "qps >= 3x sklearn (2 workers)": at_least(r["bidscore_2w_over_sklearn_2w"], 3.0),
        "p99 <= 5 ms (2 workers)": None
        if steady is None or steady.p99_ms is None
        else steady.p99_ms <= 5.0,
        "alias moves: zero errors": None if moving is None else not moving.errors,
        "alias moves: p99 <= 1.5x steady": None
        if r["alias_moves_p99_over_steady_p99"] is None
        else r["alias_moves_p99_over_steady_p99"] <= 1.5,
    }


def print_table(rows: list[Row], title: str) -> None:
    table = Table(title=title)
    headings = ["server", "QPS", "mean ms", "p50 ms", "p95 ms", "p99 ms", "errors"]
    tail = ["server CPU s/1k calls", "ghz CPU s/1k calls", "conns per worker", "worker CPU s"]
    for heading in [*headings, *tail, "load 1m"]:
        table.add_column(heading, justify="left" if heading == "server" else "right")
    for row in rows:
        errors = ", ".join(f"{k} {v}" for k, v in row.errors.items()) or "0"
        name = row.name + (f" ({row.alias_moves} moves)" if row.alias_moves else "")
        if row.streams and row.rps:
            name += f" ({row.rps:,} msg/s open loop)"
        table.add_row(
            name,
            f"{row.qps:,.0f}",
            *(f"{v:.2f}" if v is not None else "-" for v in (row.mean_ms, row.p50_ms)),
            *(f"{v:.2f}" if v is not None else "-" for v in (row.p95_ms, row.p99_ms)),
            errors,
            f"{row.server_cpu_s_per_1k:.3f}",
            f"{row.ghz_cpu_s_per_1k:.3f}",
            row.spread + (f" ({row.launches} starts)" if row.launches > 1 else ""),
            "+".join(f"{v:.1f}" for v in row.worker_cpu_s),
            f"{row.loadavg_1m:.2f}",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per server")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--connections",
        type=int,
        default=8,
        help="gRPC connections; SO_REUSEPORT spreads connections, not calls, over workers",
    )
    parser.add_argument(
        "--rps", type=int, default=0, help="open-loop rate (ghz --rps); 0 = as fast as answered"
    )
    parser.add_argument("--streams", type=int, default=4, help="ScoreStream rows: streams")
    parser.add_argument(
        "--stream-in-flight",
        type=int,
        default=16,
        help="ScoreStream rows: messages in flight per stream (closed loop)",
    )
    parser.add_argument(
        "--stream-spread",
        choices=("even", "any"),
        default="even",
        help="ScoreStream rows: restart streamload until its connections are spread evenly over\n"
        "the workers (even), or keep whatever SO_REUSEPORT gave (any)",
    )
    parser.add_argument(
        "--streamload-cpus",
        type=int,
        default=1,
        help="cores streamload's Go scheduler runs on (-cpus; 0 = all): with all, its idle\n"
        "threads spin on the server's cores; one core carries it (<= 0.5 core at 12k msg/s)",
    )
    parser.add_argument(
        "--ghz-cpus",
        type=int,
        default=0,
        help="cores ghz's Go scheduler runs on (--cpus; 0 = all): on one core ghz itself caps\n"
        "the echo server's unary rate, so it keeps its default",
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="untallied seconds of load first")
    parser.add_argument("--requests", type=int, default=1000, help="distinct payloads")
    parser.add_argument("--settle", type=float, default=1.0, help="idle seconds after start")
    parser.add_argument("--only", default="", help="comma-separated row names to run")
    parser.add_argument("--out", type=Path, default=None, help="JSON result path")
    args = parser.parse_args()

    payloads = generated_payloads(args.requests, seed=3, candidates=10, models=["ctr", "cvr"])
    with tempfile.TemporaryDirectory(prefix="bidscore-bench-") as tmp:
        home = Path(tmp)
        os.environ["BIDSCORE_HOME"] = str(home)
        for var in ("BIDSCORE_REGISTRY", "BIDSCORE_STORE"):
            os.environ.pop(var, None)
        started = time.monotonic()
        versions = bench_models.publish(home, dict(SPECS))
        console.print(
            f"[dim]trained and published ctr (FFM) and cvr (LR), 2 versions each, "
            f"in {time.monotonic() - started:.1f} s[/dim]"
        )
        plan: list[tuple[str, int, Callable[[], AbstractContextManager[ServerProcess]], Any]] = [
            ("echo-1w", 1, lambda: reference_server("bench.servers.echo", 1), None),
            ("echo-2w", 2, lambda: reference_server("bench.servers.echo", 2), None),
            ("sklearn-1w", 1, lambda: reference_server("bench.servers.sklearn_baseline", 1), None),
            ("sklearn-2w", 2, lambda: reference_server("bench.servers.sklearn_baseline", 2), None),
            ("bidscore-1w", 1, lambda: bidscore_server(1), None),
            ("bidscore-2w", 2, lambda: bidscore_server(2), None),
            (
                "bidscore-2w-alias-moves",
                2,
                lambda: bidscore_server(2),
                lambda: alias_mover(home, versions),
            ),
        ]
        stream_plan: list[tuple[str, int, Callable[[], AbstractContextManager[ServerProcess]]]] = [
            ("echo-stream-1w", 1, lambda: reference_server("bench.servers.echo", 1)),
            ("echo-stream-2w", 2, lambda: reference_server("bench.servers.echo", 2)),
            ("bidscore-stream-1w", 1, lambda: bidscore_server(1)),
            ("bidscore-stream-2w", 2, lambda: bidscore_server(2)),
        ]
        only = {n for n in args.only.split(",") if n}
        rows = [
            measure(name, workers, start, payloads, args, during)
            for name, workers, start, during in plan
            if not only or name in only
        ]
        rows += [
            measure(name, workers, start, payloads, args, stream_rps=args.rps)
            for name, workers, start in stream_plan
            if not only or name in only
        ]
        closed = next((r for r in rows if r.name == "bidscore-stream-2w"), None)
        half_name = "bidscore-stream-2w-half-rate"
        if closed is not None and closed.qps > 0 and (not only or half_name in only):
            # Open loop at half the closed loop's rate: the latency of a load it sustains.
            rows.append(
                measure(
                    half_name,
                    2,
                    lambda: bidscore_server(2),
                    payloads,
                    args,
                    stream_rps=max(1, round(closed.qps / 2)),
                )
            )
    by_name = {row.name: row for row in rows}
    r = ratios(by_name)
    t = targets(by_name, r, open_loop=args.rps > 0)
    cores, load = os.cpu_count(), os.getloadavg()
    print_table(
        rows,
        f"{args.concurrency} calls in flight, {args.connections} connection(s), "
        f"{'unlimited' if not args.rps else args.rps} rps, "
        f"{args.duration:g} s per server, 10 candidates x 2 models per call",
    )
    for key, value in r.items():
        console.print(f"{key:<48} {'-' if value is None else f'{value:.2f}'}")
    for key, ok in t.items():
        console.print(f"target {key:<34} {'-' if ok is None else ('met' if ok else 'MISSED')}")
    console.print(f"machine: {cores} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    document = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "connections": args.connections,
            "rps": args.rps,
            "warmup_s": args.warmup,
            "distinct_payloads": args.requests,
            "candidates": 10,
            "models": ["ctr", "cvr"],
            "ghz_version": _ghz_version(),
            "streams": args.streams,
            "stream_in_flight": args.stream_in_flight,
            "stream_spread": args.stream_spread,
            "streamload_cpus": args.streamload_cpus,
            "ghz_cpus": args.ghz_cpus,
        },
        "machine": {"cores": cores, "loadavg": list(load)},
        "rows": [asdict(row) for row in rows],
        "ratios": r,
        "targets": t,
    }
    out = args.out or RESULTS / f"serving-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"wrote {out}")


def _ghz_version() -> str:
    return ghz_version(find_ghz())


if __name__ == "__main__":
    main()
