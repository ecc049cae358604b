"""The main job end to end on the embedded defaults (`make demo`).

Generates bid logs, trains and promotes `ctr` (FFM) and `cvr` (LR), starts the scoring server,
scores a few requests, load-tests it with ghz while a new `ctr` version is promoted, and stops
everything it started. Its state lives in its own home, `./.bidscore/demo` (emptied at the
start of every run, so a second `make demo` starts from scratch and never touches the
registry the README's everyday commands use): afterwards
`BIDSCORE_HOME=.bidscore/demo control models list` and `... control history ctr` show what
happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from bidscore.v1 import scorer_pb2, scorer_pb2_grpc
from control.datagen import request_payloads

ROOT = Path(__file__).resolve().parent.parent
DEMO_HOME = ROOT / ".bidscore" / "demo"
CONTROL = str(Path(sys.executable).with_name("control"))
console = Console()


def step(title: str) -> None:
    console.rule(f"[bold]{title}")


def control(*args: str) -> str:
    """Run one `control` command, echoing it, and return its stdout."""
    console.print(f"[dim]$ control {' '.join(args)}[/]")
    done = subprocess.run(
        [CONTROL, *args],
        capture_output=True,
        text=True,
        check=False,
        # Tables printed by `control` come through a pipe: give them room.
        env={**os.environ, "COLUMNS": "120"},
    )
    if done.returncode != 0:
        console.print(done.stdout, done.stderr, markup=False)
        raise SystemExit(f"demo: `control {args[0]}` failed with exit code {done.returncode}")
    return done.stdout


def control_json(*args: str) -> dict:
    return json.loads(control(*args, "--json"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    server = subprocess.Popen(
        [CONTROL, "serve", "--port", str(port), "--models", "ctr,cvr", "--poll-interval", "1"],
        start_new_session=True,
    )
    try:
        wait_until_serving(f"127.0.0.1:{port}", server)
        yield server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def wait_until_serving(target: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"demo: the server exited with code {server.returncode}")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.3)
    raise SystemExit(f"demo: the server at {target} was not SERVING after {timeout:.0f} s")


def score_examples(target: str) -> None:
    table = Table("request", "candidate", "campaign", "ad category", "ctr", "cvr")
    with grpc.insecure_channel(target) as channel:
        stub = scorer_pb2_grpc.ScorerStub(channel)
        for payload in request_payloads(3, seed=7, candidates=3):
            request = scorer_pb2.ScoreRequest(
                request_id=payload["request_id"],
                context=payload["context"],
                candidates=[
                    scorer_pb2.Candidate(id=c["id"], features=c["features"])
                    for c in payload["candidates"]
                ],
                models=["ctr", "cvr"],
            )
            reply = stub.Score(request, timeout=2)
            versions = ", ".join(f"{m.name} v{m.version}" for m in reply.models)
            for cand, scores in zip(request.candidates, reply.candidates, strict=True):
                table.add_row(
                    reply.request_id[:8],
                    scores.id[-6:],
                    cand.features["campaign_id"],
                    cand.features["ad_category"],
                    f"{scores.scores[0]:.4f}",
                    f"{scores.scores[1]:.4f}",
                )
    table.caption = f"scored by {versions}"
    console.print(table)


def main() -> int:
    os.chdir(ROOT)
    # A home of the demo's own, emptied first: a rerun would otherwise find the last run's
    # versions (trained with another seed, hence on this run's validation rows) as production,
    # and the promotion gate would rightly refuse the new one.
    home = DEMO_HOME
    shutil.rmtree(home, ignore_errors=True)
    os.environ["BIDSCORE_HOME"] = str(home)
    data = home / "demo-data"
    if shutil.which("ghz") is None:
        raise SystemExit("demo: ghz is not on PATH; run `make install` (it installs ghz with Go)")

    step("1. Generate a week of bid logs")
    control(
        "datagen",
        "--rows",
        "40000",
        "--days",
        "7",
        "--candidates",
        "4",
        "--seed",
        "1",
        "--out",
        str(data),
    )

    step("2. Train, evaluate and register ctr (FFM) and cvr (LR)")
    versions = {}
    for model in ("ctr", "cvr"):
        # --auto-stop: cvr's few thousand clicked rows overfit to the base rate in 15 epochs,
        # and promotion refuses a model that does not beat the base rate.
        trained = control_json(
            "train", "--model", model, "--data", str(data), "--threads", "2", "--auto-stop"
        )
        versions[model] = str(trained["version"])
        console.print(f"{model}: version {versions[model]}, metrics {trained['metrics']}")

    step("3. Promote both to production and show the registry")
    for model, version in versions.items():
        control("promote", model, version)
    console.print(control("models", "list"))

    step("4. Serve and score a few requests")
    port = free_port()
    target = f"127.0.0.1:{port}"
    with running_server(port):
        score_examples(target)

        step("5. Load test with ghz for 10 s while a new ctr version is promoted")
        challenger = control_json(
            "train",
            "--model",
            "ctr",
            "--data",
            str(data),
            "--threads",
            "2",
            "--seed",
            "2",
            "--auto-stop",
        )

        def promote_midway() -> None:
            time.sleep(4)
            # --force skips the metric gates (this challenger only differs by its seed), never
            # the integrity checks: the point here is a model swap under load.
            control("promote", "ctr", str(challenger["version"]), "--force")

        promoter = threading.Thread(target=promote_midway)
        promoter.start()
        console.print(
            control("loadtest", "--target", target, "--duration", "10", "--concurrency", "16")
        )
        promoter.join()
        score_examples(target)
    console.print(control("history", "ctr"))
    step("Done: everything the demo started has stopped")
    console.print(
        f"The demo's registry is still there: BIDSCORE_HOME={home.relative_to(ROOT)}"
        " .venv/bin/control models list"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
