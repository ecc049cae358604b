"""The server's gRPC core settings reach grpc: set before grpc is imported, never over the
operator's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pyserver.grpc_core import EXPERIMENTS_ENV, SERVER_EXPERIMENTS

REPO = Path(__file__).resolve().parents[2]
# In a fresh interpreter: the experiments in the environment once the server's entry module
# (and grpc, which reads them at import) is imported, and what the server logs of them.
PROBE = (
    "import os; import pyserver.workers as w, grpc; from pyserver import grpc_core; "
    f"print(os.environ.get({EXPERIMENTS_ENV!r}, '<unset>')); "
    "print(grpc_core.describe(w.GRPC_EXPERIMENTS))"
)


def _probe(code: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != EXPERIMENTS_ENV}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.splitlines()


def test_the_server_entry_sets_its_experiments_before_grpc_reads_them() -> None:
    value, described = _probe(PROBE)
    assert value == SERVER_EXPERIMENTS
    assert described == f"{EXPERIMENTS_ENV}={SERVER_EXPERIMENTS}"


def test_an_operators_experiments_are_kept_even_empty() -> None:
    assert _probe(PROBE, **{EXPERIMENTS_ENV: "-event_engine_client"})[0] == "-event_engine_client"
    value, described = _probe(PROBE, **{EXPERIMENTS_ENV: ""})
    assert value == ""
    assert described.endswith("(empty: grpc defaults)")


def test_too_late_once_grpc_is_imported_and_says_so() -> None:
    value, described = _probe("import grpc\n" + PROBE.replace("; ", "\n"))
    assert value == "<unset>"
    assert described.endswith("left alone (grpc was imported before pyserver.workers)")
