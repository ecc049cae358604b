"""Finding, describing and running the ghz binary as a bounded subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from control.loadtest.cpus import check_cpus
from control.loadtest.errors import LoadTestError
from control.loadtest.tls import ClientTls

GHZ_ENV = "BIDSCORE_GHZ"
SCORE_CALL = "bidscore.v1.Scorer.Score"
INSTALL_HINT = (
    "`make install` builds it into .tools/bin with the Go toolchain; put that directory on PATH, "
    f"or pass --ghz PATH (or set {GHZ_ENV})"
)
# ghz gets this long beyond the test's own duration (connecting, tallying the report) before
# it is killed: a load test must end by itself even if ghz hangs.
GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class GhzSettings:
    """The load shape, in ghz's own terms."""

    duration_s: float = 10.0
    concurrency: int = 16
    connections: int = 1
    rps: int = 0  # 0: as fast as the server answers
    skip_first: int = 0
    call_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    tls: ClientTls | None = None  # None: plaintext
    cpus: int = 0  # cores ghz's Go scheduler runs on (ghz --cpus); 0: all

    def __post_init__(self) -> None:
        checks = [
            (
                0 < self.duration_s <= 3600,
                f"--duration must be in (0, 3600] s, got {self.duration_s}",
            ),
            (self.concurrency >= 1, f"--concurrency must be at least 1, got {self.concurrency}"),
            (self.connections >= 1, f"--connections must be at least 1, got {self.connections}"),
            (
                self.connections <= self.concurrency,
                f"--connections ({self.connections}) cannot exceed --concurrency "
                f"({self.concurrency})",
            ),
            (self.rps >= 0, f"--rps must be >= 0 (0 = unlimited), got {self.rps}"),
            (self.skip_first >= 0, f"--skip-first must be >= 0, got {self.skip_first}"),
            (self.call_timeout_s > 0, f"call timeout must be > 0, got {self.call_timeout_s}"),
        ]
        for ok, message in checks:
            if not ok:
                raise LoadTestError(message)
        check_cpus(self.cpus)


def find_ghz(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`explicit`, else `$BIDSCORE_GHZ`, else `ghz` on PATH; a clear error when there is none."""
    chosen = explicit or os.environ.get(GHZ_ENV)
    if chosen:
        path = Path(chosen)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LoadTestError(f"ghz not found: {path} is not an executable file; {INSTALL_HINT}")
        return path
    found = shutil.which("ghz")
    if found is None:
        raise LoadTestError(f"ghz is not installed or not on PATH: {INSTALL_HINT}")
    return Path(found)


def ghz_version(ghz: Path) -> str:
    """`ghz --version`, e.g. `v0.120.0` (`dev` for a build without the version ldflag)."""
    try:
        done = subprocess.run(
            [str(ghz), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LoadTestError(f"cannot run {ghz} --version: {exc}") from exc
    text = (done.stdout or done.stderr).strip()
    if done.returncode != 0 or not text:
        raise LoadTestError(f"{ghz} --version failed (exit {done.returncode}): {text[:200]}")
    return text.splitlines()[0]


def ghz_command(
    ghz: Path, target: str, data_file: Path, protoset: Path, settings: GhzSettings
) -> list[str]:
    """The ghz command line for one run; the JSON report goes to stdout."""
    return [
        str(ghz),
        *(settings.tls.ghz_args() if settings.tls else ["--insecure"]),
        f"--protoset={protoset}",
        f"--call={SCORE_CALL}",
        f"--data-file={data_file}",
        # The payloads hold no template actions; skipping the template engine keeps ghz's own
        # CPU use (on the same two cores as the server) down.
        "--disable-template-functions",
        "--disable-template-data",
        f"--concurrency={settings.concurrency}",
        f"--connections={settings.connections}",
        f"--rps={settings.rps}",
        f"--duration={_go_duration(settings.duration_s)}",
        *([f"--cpus={settings.cpus}"] if settings.cpus else []),
        # Calls still in flight when the duration ends are not failures of the server.
        "--duration-stop=ignore",
        f"--skipFirst={settings.skip_first}",
        f"--timeout={_go_duration(settings.call_timeout_s)}",
        f"--connect-timeout={_go_duration(settings.connect_timeout_s)}",
        "--format=json",
        target,
    ]


def run_ghz(command: list[str], settings: GhzSettings) -> str:
    """Run ghz in its own process group; kill the group if it overruns. Returns its stdout."""
    limit = settings.duration_s + settings.connect_timeout_s + GRACE_SECONDS
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired as exc:
        raise LoadTestError(f"ghz did not finish within {limit:.0f}s and was stopped") from exc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0 or not stdout.strip():
        reason = " ".join((stderr or stdout).split())[:300] or "no output"
        raise LoadTestError(f"ghz failed (exit {proc.returncode}): {reason}")
    return stdout


def _go_duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"
