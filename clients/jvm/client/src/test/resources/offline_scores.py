"""Scores computed offline, for the JVM client's tests to compare with what it gets over gRPC.

Run with the repository's Python (`.venv/bin/python`) and BIDSCORE_HOME pointing at the
registry the test server follows. Writes JSON to stdout:

    {"requests": [ScoreRequest as {"request_id", "context", "candidates": [{"id", "features"}]}],
     "scores": {model: {version: [[score per candidate] per request]}}}

for every registered version of each model, computed the way training evaluates a model and
the Python test suite checks the server: datagen's rows through `features.tokenize` (the
catalogue's feature code, `@property` features included) and `Model.predict` (no server).
The request payloads are datagen.request_payloads of the same rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import rust_core
from bidscore.registry import open_registry
from bidscore.settings import default_registry_url, default_store_url
from bidscore.store import open_store
from control import datagen
from features import catalog
from features.tokenize import tokenize_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--models", default="ctr,cvr")
    opts = parser.parse_args()

    registry = open_registry(default_registry_url())
    store = open_store(default_store_url())
    specs = catalog.load()
    table = datagen.generate(opts.requests * opts.candidates, opts.seed, candidates=opts.candidates)
    payloads = datagen.request_payloads(opts.requests, opts.seed, candidates=opts.candidates)
    scores: dict[str, dict[str, list[list[float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in opts.models.split(","):
            data = tokenize_table(table, specs.spec(name), label=None)
            for version in registry.list_versions(name):
                path = store.local_path(version.artifact_uri)
                if path is None:
                    path = Path(tmp) / f"{name}-{version.version}.model"
                    store.get(version.artifact_uri, path)
                flat = rust_core.load_model(path).predict(data).tolist()
                c = opts.candidates
                scores.setdefault(name, {})[version.version] = [
                    flat[r * c : (r + 1) * c] for r in range(opts.requests)
                ]
    json.dump({"requests": payloads, "scores": scores}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
