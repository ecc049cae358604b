"""`control serve` (also `python -m control serve`): options and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from control.cli.app import app
from tests.pyserver.serve_harness import HERE


def test_control_serve_help_lists_the_options() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in (
        "--host", "--port", "--workers", "--models", "--alias", "--poll-interval", "--registry",
        "--store", "--max-concurrent-rpcs", "--metrics-port", "--max-request-bytes",
        "--max-candidates", "--grace",
    ):  # fmt: skip
        assert option in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "error: --workers must be at least 1, got 0"),
        (
            ["--models", "ctr,nope"],
            "error: unknown model(s) nope: tests.pyserver.serve_specs:SPECS has ctr, cvr, win",
        ),
        (["--specs", "no_such_module:SPECS"], "error: cannot load specs 'no_such_module:SPECS'"),
        (["--workers", "2", "--port", "0"], "error: --port 0 (any free port) cannot be shared"),
        # Defect 12: a mistyped registry path was created empty and serve waited forever.
        (
            ["--registry", "sqlite:///nonexistent-dir/regsitry.db"],
            "error: registry /nonexistent-dir/regsitry.db does not exist",
        ),
    ],
)
def test_bad_settings_exit_1_with_one_line(args: list[str], message: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "control",
            "serve",
            "--specs",
            "tests.pyserver.serve_specs:SPECS",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message)
