"""Cost of experiment routing per request: `Scorer.score_request_routed` with ctr under a running
A/B experiment (key `user_id`), against the same scorer without it, in the same run, on the
same requests (10 candidates, ctr only: the FFM of tests/pyserver/serve_specs, no Python
features). Routing is a context lookup and one BLAKE2b-64 per routed model, in Rust.

    .venv/bin/python bench/experiment_bench.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import time

import rust_core
from bidscore.v1 import scorer_pb2
from control import datagen
from features.tokenize import tokenize_table
from pyserver.serving_features import ServingFeatures
from tests.pyserver import serve_specs


def requests(n: int) -> list[bytes]:
    out = []
    for payload in datagen.request_payloads(n, seed=3, candidates=10):
        request = scorer_pb2.ScoreRequest(
            request_id=payload["request_id"], context=payload["context"], models=["ctr"]
        )
        for cand in payload["candidates"]:
            request.candidates.add(id=cand["id"], features=cand["features"])
        out.append(request.SerializeToString())
    return out


def per_call_ns(call: object, data: list[bytes], calls: int) -> float:
    score = call  # bound method
    start = time.perf_counter_ns()
    for i in range(calls):
        score(data[i % len(data)])  # type: ignore[operator]
    return (time.perf_counter_ns() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    spec = serve_specs.SPECS["ctr"]
    table = datagen.generate(3000, seed=7)
    data = tokenize_table(table, spec, label="click")
    a = rust_core.train_ffm(
        data, k=2, epochs=1, seed=1, bits=spec.bits, fingerprint=spec.fingerprint
    )
    b = rust_core.train_ffm(
        data, k=2, epochs=2, seed=2, bits=spec.bits, fingerprint=spec.fingerprint
    )
    features = ServingFeatures([spec])
    plain = rust_core.Scorer(features.plan, {"ctr": (a, "1")})
    routed = rust_core.Scorer(
        features.plan,
        {"ctr": (a, "1")},
        experiments={"ctr": ("e", "ab", "user_id", "salt", 0.5, (b, "2"))},
    )
    # The treatment is the same model: only the routing differs from `plain` (with `routed`,
    # half the requests also touch a second model's weights).
    same = rust_core.Scorer(
        features.plan,
        {"ctr": (a, "1")},
        experiments={"ctr": ("e", "ab", "user_id", "salt", 0.5, (a, "2"))},
    )
    batch = requests(500)
    variants = (
        ("no experiment", plain),
        ("A/B same model", same),
        ("A/B on user_id", routed),
    )
    for _, scorer in variants:  # warm up
        per_call_ns(scorer.score_request_routed, batch, 2000)
    results: dict[str, float] = {}
    for _ in range(5):  # interleaved, best of 5: the machine is shared
        for name, scorer in variants:
            ns = per_call_ns(scorer.score_request_routed, batch, args.calls)
            results[name] = min(results.get(name, ns), ns)
    base = results["no experiment"]
    for name, ns in results.items():
        print(f"{name:18s} {ns / 1000:8.2f} us/request  x{ns / base:.3f}")
    print(f"routing alone (same model) {(results['A/B same model'] - base):.0f} ns/request")


if __name__ == "__main__":
    main()
