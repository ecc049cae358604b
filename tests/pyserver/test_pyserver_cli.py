"""`control serve` (also `python -m control serve`): options and one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bidscore.registry import open_registry
from control.cli.app import app
from control.cli.serve import missing_aliases, report_missing_aliases
from pyserver.config import ServerConfig
from pyserver.errors import ConfigError
from tests.pyserver.serve_harness import HERE, Published, TrainedModel


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
    result = _control_serve(args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message)


@pytest.mark.parametrize("option", ["--port", "--metrics-port"])
def test_a_port_in_use_is_one_line(option: str, free_port: Callable[[], int]) -> None:
    """Before: gRPC's C-core log line plus "Failed to bind", or a traceback for the metrics
    port. Now: one line naming the option and the port, before anything starts."""
    ports = {"--port": free_port(), "--metrics-port": free_port()}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[option]))
        holder.listen()
        result = _control_serve([f"{name}={port}" for name, port in ports.items()])
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {option}: port {ports[option]} on 127.0.0.1 is already in use (another"
        f" server? stop it or choose another {option})"
    ]


def _control_serve(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
    return subprocess.run(
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


def test_the_fix_for_a_model_without_the_alias_is_the_exact_command(
    bidscore_home: Path, trained: dict[str, list[TrainedModel]]
) -> None:
    """On the embedded defaults the commands carry no --registry/--store: pasted, they work."""
    config = ServerConfig(models=("ctr", "cvr"))
    published = Published(config.registry_url, config.store_url, open_registry(config.registry_url))
    entry = trained["ctr"][0]  # ctr has a version (not promoted), cvr has none
    published.publish(
        "ctr", entry.path, checksum=entry.model.checksum, fingerprint=entry.model.fingerprint
    )
    assert missing_aliases(config) == {
        "ctr": "`control promote ctr 1`",
        "cvr": "`control train --model cvr --data LOGS` then `control promote cvr 1`",
    }


def test_per_model_aliases_name_each_missing_alias_with_its_fix(
    bidscore_home: Path,
    trained: dict[str, list[TrainedModel]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = ServerConfig(models=("ctr", "cvr"), alias="ctr=canary")
    published = Published(config.registry_url, config.store_url, open_registry(config.registry_url))
    for name in ("ctr", "cvr"):
        entry = trained[name][0]
        published.publish(
            name, entry.path, checksum=entry.model.checksum, fingerprint=entry.model.fingerprint
        )
    published.promote("cvr", "1")  # cvr follows production (not named): set; ctr's canary is not
    assert missing_aliases(config) == {
        "ctr": "`control promote ctr 1 --alias canary --create-alias`"
    }
    report_missing_aliases(config)
    assert capsys.readouterr().err == (
        "warning: ctr has no 'canary' alias: run `control promote ctr 1 --alias canary"
        " --create-alias`; serving cvr meanwhile\n"
    )
    # Neither set: nothing to serve, each model with its own alias and fix.
    with pytest.raises(ConfigError) as info:
        report_missing_aliases(ServerConfig(models=("ctr", "cvr"), alias="ctr=canary,cvr=blue"))
    message = str(info.value)
    assert message.startswith("no model has its alias, nothing to serve: ")
    assert "ctr: alias 'canary' is not set, run `control promote ctr 1 --alias canary" in message
    assert "cvr: alias 'blue' is not set, run `control promote cvr 1 --alias blue" in message
