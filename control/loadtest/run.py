"""One load test: probe the target, hand ghz the payloads, read its report."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from control.loadtest.ghz import (
    GhzSettings,
    find_ghz,
    ghz_command,
    ghz_version,
    run_ghz,
)
from control.loadtest.payloads import write_data_file
from control.loadtest.protoset import write_protoset
from control.loadtest.report import LoadReport, parse_ghz_report
from control.loadtest.target import parse_target, wait_for_target
from control.loadtest.tls import ClientTls


def run_loadtest(
    target: str,
    payloads: Sequence[Mapping[str, Any]],
    duration_s: float = 10.0,
    concurrency: int = 16,
    *,
    connections: int = 1,
    rps: int = 0,
    skip_first: int = 0,
    call_timeout_s: float = 5.0,
    connect_timeout_s: float = 5.0,
    ready_timeout_s: float = 60.0,
    ghz: str | os.PathLike[str] | None = None,
    allow_remote: bool = False,
    tls: ClientTls | None = None,
    cpus: int = 0,
) -> LoadReport:
    """Send `payloads` round-robin to `target` with ghz for `duration_s` and report.

    Waits up to `ready_timeout_s` for the target to report SERVING (health), so a load test
    started right after `control serve &` measures the models, not their loading. Raises
    LoadTestError when ghz is missing or fails, or the target does not answer. Failed
    calls do not raise: they are counted in the report's `errors` by status. `cpus`: cores
    ghz's scheduler runs on (0: all; see `control.loadtest.cpus`).
    """
    settings = GhzSettings(
        duration_s=duration_s,
        concurrency=concurrency,
        connections=connections,
        rps=rps,
        skip_first=skip_first,
        call_timeout_s=call_timeout_s,
        connect_timeout_s=connect_timeout_s,
        tls=tls,
        cpus=cpus,
    )
    parse_target(target, allow_remote=allow_remote)
    ghz_path = find_ghz(ghz)
    version = ghz_version(ghz_path)
    wait_for_target(target, connect_timeout_s, ready_timeout_s, tls)
    with tempfile.TemporaryDirectory(prefix="bidscore-loadtest-") as tmp:
        data_file = write_data_file([dict(p) for p in payloads], Path(tmp) / "payloads.json")
        protoset = write_protoset(Path(tmp) / "scorer.protoset")
        stdout = run_ghz(ghz_command(ghz_path, target, data_file, protoset, settings), settings)
    return parse_ghz_report(stdout, version)
