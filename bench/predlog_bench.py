"""Cost of the prediction log on the request path: `log_response` per call, against a no-op
hook in the same run, at the default 1% sample rate and at 100%. The loop calls as fast as it
can, so at 100% the writer falls behind and the bounded queue drops (and counts) the excess;
the per-call time includes the writer thread's share of the GIL (parsing and encoding).

    .venv/bin/python bench/predlog_bench.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from bidscore.v1 import scorer_pb2
from control import datagen
from pyserver.predlog import PredictionLog


def pairs(n: int) -> list[tuple[bytes, bytes]]:
    """Serialized (request, response) pairs of 10 candidates, scored by two models."""
    out = []
    for payload in datagen.request_payloads(n, seed=3, candidates=10):
        request = scorer_pb2.ScoreRequest(
            request_id=payload["request_id"], context=payload["context"]
        )
        response = scorer_pb2.ScoreResponse(
            request_id=payload["request_id"],
            models=[
                scorer_pb2.ModelVersion(name="ctr", version="7"),
                scorer_pb2.ModelVersion(name="cvr", version="2"),
            ],
        )
        for cand in payload["candidates"]:
            request.candidates.add(id=cand["id"], features=cand["features"])
            response.candidates.add(id=cand["id"], scores=[0.01, 0.002])
        out.append((request.SerializeToString(), response.SerializeToString()))
    return out


def per_call_ns(hook: object, data: list[tuple[bytes, bytes]], calls: int) -> float:
    call = hook.__call__  # type: ignore[attr-defined]
    start = time.perf_counter_ns()
    for i in range(calls):
        request, response = data[i % len(data)]
        call(request, response)
    return (time.perf_counter_ns() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    data = pairs(200)

    def noop(request: bytes, response: bytes) -> None:
        return None

    baseline = per_call_ns(noop, data, args.calls)
    print(f"{'hook':<28}{'ns/call':>10}{'x no-op':>10}{'written':>10}{'dropped':>10}")
    print(f"{'no-op':<28}{baseline:>10.0f}{1.0:>10.1f}")
    for rate, features in ((0.01, False), (1.0, False), (1.0, True)):
        with tempfile.TemporaryDirectory(prefix="predlog-bench-") as tmp:
            log = PredictionLog(
                str(Path(tmp)),
                sample_rate=rate,
                include_features=features,
                registry=CollectorRegistry(),
            )
            cost = per_call_ns(log.log_response, data, args.calls)
            log.close(timeout=60)
            name = f"log_response rate={rate:g}" + (" +features" if features else "")
            ratio = cost / baseline
            print(f"{name:<28}{cost:>10.0f}{ratio:>10.1f}{log.written:>10}{log.dropped():>10}")


if __name__ == "__main__":
    main()
