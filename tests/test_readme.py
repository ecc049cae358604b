"""README's "Everyday commands" run as written, so the block cannot drift from the code.

The block is extracted from README.md and run by bash in a temporary directory with the same
commands; only what a test must change is substituted: a private BIDSCORE_HOME (no venv
activation: the test's own interpreter's scripts are on PATH), a free port for 50051, fewer
rows per day and a shorter load test. `control serve ... &` runs in the background as the
README says, and the README's own `kill %1` stops it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.doc_blocks import blocks_named, doc_env
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# Rows per day: small, yet with --auto-stop both models still beat the base rate (NE < 1 with
# a margin: about 0.85 for cvr and 0.91 for ctr), which `control promote` requires.
ROWS_PER_DAY = "8000"


def everyday_block() -> str:
    """The README block marked `<!-- doc-test: readme-everyday -->`."""
    (block,) = blocks_named("readme-everyday")
    return block.text


def substituted(block: str, port: int) -> str:
    lines = []
    for line in block.splitlines():
        if line.startswith(". .venv/bin/activate"):
            continue  # PATH is set by the test instead
        lines.append(line)
    script = "\n".join(lines) + "\n"
    replacements = {
        "--rows 100000": f"--rows {ROWS_PER_DAY}",
        "--duration 10": "--duration 2",
        "50051": str(port),
    }
    for old, new in replacements.items():
        assert old in script, f"the README block no longer contains {old!r}"
        script = script.replace(old, new)
    return script


def test_extraction_and_substitution() -> None:
    block = everyday_block()
    assert block.startswith(". .venv/bin/activate")
    script = substituted(block, 41234)
    assert "activate" not in script
    assert f"--rows {ROWS_PER_DAY}" in script
    assert "--target 127.0.0.1:41234" in script
    assert re.search(r"^control serve .*&", script, re.MULTILINE)
    assert re.search(r"^kill %1", script, re.MULTILINE)


def test_everyday_commands_run_as_written(tmp_path: Path, free_port: Callable[[], int]) -> None:
    port = free_port()
    script = substituted(everyday_block(), port)
    env = doc_env(tmp_path / "home")
    log_path = tmp_path / "everyday.log"
    # A file, not a pipe: the background server inherits the output and outlives bash.
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the background server too: teardown can stop the group
        )
    try:
        code = proc.wait(timeout=800)
        out = log_path.read_text(errors="replace")
        assert code == 0, out[-6000:]
        for expected in (
            "registered ctr version 1",
            "registered cvr version 1",
            "promoted ctr/production: (unset) -> 1",
            "promoted cvr/production: (unset) -> 1",
            "registered ctr version 2",
            "promoted ctr/production: 1 -> 2",
            "rolled back ctr/production: 2 -> 1",
            "history of ctr/production",
            "wrote report.html",
        ):
            assert expected in out, f"{expected!r} missing from:\n{out[-6000:]}"
        assert (tmp_path / "report.html").is_file()
        # `kill %1` stopped the server: the session empties once it has drained.
        wait_until(lambda: not _group_alive(proc.pid), timeout=60, message="server to stop")
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
