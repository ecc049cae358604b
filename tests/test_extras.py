"""The optional extras of pyproject.toml: the base install runs the control plane's main job
(datagen, train, promote, retrain, history, runs) on the embedded defaults, and a command
that needs an extra names it in one line.

"Without an extra" is simulated in a subprocess of the real `control` entry point by an import
hook that refuses the extras' modules, so the test needs no second virtualenv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
ROLES = ("serve", "train", "tune", "monitor", "aws", "ray")

# The top-level modules each optional distribution provides.
MODULES = {
    "grpcio": ["grpc"],
    "grpcio-health-checking": ["grpc_health"],
    "grpcio-reflection": ["grpc_reflection"],
    "protobuf": ["google"],
    "uvloop": ["uvloop"],
    "prometheus-client": ["prometheus_client"],
    "matplotlib": ["matplotlib"],
    "boto3": ["boto3", "botocore"],
    "python-json-logger": ["pythonjsonlogger"],
    "cryptography": ["cryptography"],
    "optuna": ["optuna"],
    "ray": ["ray"],
}

RUNNER = """
import importlib.abc
import sys

HIDDEN = set(sys.argv[1].split(","))


class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ImportError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, Hide())
sys.argv = ["control", *sys.argv[2:]]
from control.cli.app import main

main()
"""


def _name(requirement: str) -> str:
    for stop in "<>=[; ":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip()


def _extra(name: str) -> list[str]:
    return [_name(r) for r in PYPROJECT["optional-dependencies"][name]]


def test_extras_name_each_role_and_all_has_every_one() -> None:
    extras = PYPROJECT["optional-dependencies"]
    assert set(ROLES) | {"all", "dev"} == set(extras)
    assert extras["all"] == [f"bidscore[{','.join(ROLES)}]"]
    assert "bidscore[all]" in extras["dev"]
    base = {_name(r) for r in PYPROJECT["dependencies"]}
    optional = {name for role in ROLES for name in _extra(role)}
    assert not base & optional
    assert optional == set(MODULES)  # a new optional dependency needs its modules here


def _control(tmp_path: Path, hidden: set[str], *args: str) -> subprocess.CompletedProcess[str]:
    runner = tmp_path / "control_without_extras.py"
    runner.write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIDSCORE_")}
    env |= {
        "BIDSCORE_HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "COLUMNS": "160",
    }
    return subprocess.run(
        [sys.executable, str(runner), ",".join(sorted(hidden)), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.timeout(600)
def test_the_base_install_runs_the_main_job(tmp_path: Path) -> None:
    hidden = {module for name in MODULES for module in MODULES[name]}
    steps = [
        ("datagen", "--rows", "3000", "--days", "10", "--out", "logs"),
        ("train", "--model", "ctr", "--algo", "lr", "--data", "logs", "--auto-stop"),
        ("promote", "ctr", "1"),
        ("retrain", "--model", "ctr", "--data", "logs", "--date", "2026-11-09"),
        ("history", "ctr"),
        ("runs", "list", "ctr"),
        ("models", "list"),
        ("monitor", "offline", "ctr"),
    ]
    for step in steps:
        done = _control(tmp_path, hidden, *step)
        assert done.returncode == 0, (step, done.stdout[-2000:], done.stderr[-2000:])
    # Commands of an extra say which one, in one line.
    for args, extra in [
        (("serve",), "serve"),
        (("loadtest", "--duration", "1"), "serve"),
        (("monitor", "report", "--out", "r.html"), "monitor"),
        (("models", "list", "--registry", "dynamodb://t?region=us-east-1"), "aws"),
        (("train", "--model", "ctr", "--data", "logs", "--executor", "ray"), "ray"),
        (("retrain", "--model", "ctr", "--data", "logs", "--executor", "ray://h:1"), "ray"),
    ]:
        done = _control(tmp_path, hidden, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("error: "), args
        assert f"pip install 'bidscore[{extra}]'" in line, args
