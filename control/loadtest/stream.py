"""ScoreStream load tests with `streamload` (tools/streamload), timed per message.

ghz reports one latency per bidirectional call, i.e. per stream; a scoring service is judged
per auction. `streamload` stamps every message when sent (open loop: when due) and when the
response carrying its `request_id` arrives, and prints the same numbers as ghz's report
reduces to, plus `streams`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from bidscore.v1 import scorer_pb2
from control.loadtest.cpus import check_cpus
from control.loadtest.errors import LoadTestError
from control.loadtest.report import LoadReport
from control.loadtest.target import parse_target, wait_for_target

STREAMLOAD_ENV = "BIDSCORE_STREAMLOAD"
TOOL_NAME = "streamload"
INSTALL_HINT = (
    "`make install` builds it into .tools/bin with the Go toolchain; put that directory on PATH, "
    f"or set {STREAMLOAD_ENV}"
)
# Beyond the test's duration and drain: connecting, tallying. A load test ends by itself.
GRACE_SECONDS = 30.0
# `placement`: how often it is asked, and how long it may answer "not known yet".
PLACEMENT_POLL_SECONDS = 0.02
PLACEMENT_WAIT_SECONDS = 3.0


@dataclass(frozen=True)
class StreamSettings:
    duration_s: float = 10.0
    streams: int = 4
    in_flight: int = 8  # messages outstanding per stream (closed loop; the cap in open loop)
    connections: int = 1
    rps: int = 0  # 0: closed loop
    drain_s: float = 5.0
    cpus: int = 0  # cores streamload's Go scheduler runs on (-cpus); 0: all

    def __post_init__(self) -> None:
        checks = [
            (
                0 < self.duration_s <= 3600,
                f"--duration must be in (0, 3600] s, got {self.duration_s}",
            ),
            (1 <= self.streams <= 1024, f"--streams must be in 1..1024, got {self.streams}"),
            (
                1 <= self.in_flight <= 100_000,
                f"--concurrency must be in 1..100000, got {self.in_flight}",
            ),
            (
                1 <= self.connections <= self.streams,
                f"--connections must be in 1..--streams ({self.streams}), got {self.connections}",
            ),
            (self.rps >= 0, f"--rps must be >= 0 (0 = closed loop), got {self.rps}"),
        ]
        for ok, message in checks:
            if not ok:
                raise LoadTestError(message)
        check_cpus(self.cpus)


def find_streamload(explicit: str | os.PathLike[str] | None = None) -> Path:
    chosen = explicit or os.environ.get(STREAMLOAD_ENV)
    if chosen:
        path = Path(chosen)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LoadTestError(f"{TOOL_NAME} not found: {path} is not executable; {INSTALL_HINT}")
        return path
    found = shutil.which(TOOL_NAME)
    if found is None:
        # The checkout's own build, wherever the caller's PATH points.
        local = Path(__file__).resolve().parents[2] / ".tools" / "bin" / TOOL_NAME
        if local.is_file():
            return local
        raise LoadTestError(f"{TOOL_NAME} is not built or not on PATH: {INSTALL_HINT}")
    return Path(found)


def write_payloads(payloads: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Serialized ScoreRequests, each prefixed by its length as a uvarint."""
    if not payloads:
        raise LoadTestError("no payloads to send")
    with path.open("wb") as out:
        for payload in payloads:
            data = json_format.ParseDict(
                dict(payload), scorer_pb2.ScoreRequest()
            ).SerializeToString()
            out.write(_uvarint(len(data)) + data)
    return path


def run_stream_loadtest(
    target: str,
    payloads: Sequence[Mapping[str, Any]],
    settings: StreamSettings,
    *,
    connect_timeout_s: float = 5.0,
    streamload: str | os.PathLike[str] | None = None,
    allow_remote: bool = False,
    placement: Callable[[], bool | None] | None = None,
    on_launch: Callable[[], None] | None = None,
    max_launches: int = 1,
) -> LoadReport:
    """Load `target`'s ScoreStream with `payloads` (round-robin) and report per message.

    `placement`, if given, is asked right after `streamload` starts (every 20 ms, up to 3 s)
    whether its connections landed acceptably on the server (None: not known yet). On False
    the run is stopped and started again on new connections, up to `max_launches` starts in
    all (the last one is kept whatever its placement). `on_launch` runs just before each start
    (a caller measuring CPU takes its baseline there)."""
    parse_target(target, allow_remote=allow_remote)
    tool = find_streamload(streamload)
    wait_for_target(target, connect_timeout_s)
    with tempfile.TemporaryDirectory(prefix="bidscore-streamload-") as tmp:
        data = write_payloads(payloads, Path(tmp) / "payloads.bin")
        command = [
            str(tool),
            f"-target={target}",
            f"-data={data}",
            f"-streams={settings.streams}",
            f"-connections={settings.connections}",
            f"-in-flight={settings.in_flight}",
            f"-rps={settings.rps}",
            f"-duration={round(settings.duration_s * 1000)}ms",
            f"-drain={round(settings.drain_s * 1000)}ms",
            *([f"-cpus={settings.cpus}"] if settings.cpus else []),
        ]
        limit = settings.duration_s + settings.drain_s + GRACE_SECONDS
        for launch in range(1, max(1, max_launches) + 1):
            if on_launch is not None:
                on_launch()
            proc = _start(command)
            if placement is None or launch == max_launches or _placed(proc, placement):
                break
            _stop(proc)
        stdout = _finish(proc, limit)
    return parse_report(stdout)


def parse_report(text: str) -> LoadReport:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadTestError(f"{TOOL_NAME} printed no JSON report ({exc}): {text[:200]!r}") from exc
    if not isinstance(raw, dict) or "count" not in raw:
        raise LoadTestError(f"{TOOL_NAME}'s report has no 'count': {text[:200]!r}")
    errors = {str(k): int(v) for k, v in (raw.get("errors") or {}).items() if v}
    # A response nobody asked for, or twice, is a server bug: report it as an error.
    for key, name in (("duplicates", "DuplicateResponse"), ("unmatched", "UnmatchedResponse")):
        if raw.get(key):
            errors[name] = int(raw[key])
    return LoadReport(
        qps=float(raw.get("qps") or 0.0),
        mean_ms=raw.get("mean_ms"),
        p50_ms=raw.get("p50_ms"),
        p95_ms=raw.get("p95_ms"),
        p99_ms=raw.get("p99_ms"),
        errors=errors,
        count=int(raw["count"]),
        ghz_version=TOOL_NAME,
        streams=int(raw.get("streams") or 0),
        error_messages={str(k): int(v) for k, v in (raw.get("error_messages") or {}).items()},
    )


def _start(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _placed(proc: subprocess.Popen[str], placement: Callable[[], bool | None]) -> bool:
    """Whether to keep this run: `placement`'s answer once it has one (True if it never does)."""
    deadline = time.monotonic() + PLACEMENT_WAIT_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        verdict = placement()
        if verdict is not None:
            return verdict
        time.sleep(PLACEMENT_POLL_SECONDS)
    return True


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _finish(proc: subprocess.Popen[str], limit: float) -> str:
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired as exc:
        raise LoadTestError(
            f"{TOOL_NAME} did not finish within {limit:.0f}s and was stopped"
        ) from exc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0 or not stdout.strip():
        reason = " ".join((stderr or stdout).split())[:300] or "no output"
        raise LoadTestError(f"{TOOL_NAME} failed (exit {proc.returncode}): {reason}")
    return stdout


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
