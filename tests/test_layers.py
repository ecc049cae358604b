"""The packages import one way: features <- bidscore <- {control, pyserver}, and control may
use pyserver (to start it) but never the reverse. Every import counts, including the lazy ones
inside functions, so a cycle cannot hide behind `noqa: PLC0415`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# package -> the first-party packages it must never import
FORBIDDEN = {
    "features": {"bidscore", "control", "pyserver"},
    "bidscore": {"control", "pyserver"},
    "pyserver": {"control"},
    "control": set(),
}


def imported_packages(path: Path) -> set[tuple[int, str]]:
    """(line, top-level package) of every import in a file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, imported in imported_packages(path):
            if imported in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {imported}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_a_wrong_way_import(tmp_path: Path) -> None:
    module = tmp_path / "reloader.py"
    module.write_text("def f():\n    from control.registry import open_registry\n")
    assert imported_packages(module) == {(2, "control")}


def test_importing_every_pyserver_module_loads_no_control_module() -> None:
    """What a production host installs (`bidscore[serve]`) runs without `control`: imported
    in a fresh interpreter, no pyserver module brings it in, by any route."""
    modules = sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in (REPO / "pyserver").rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'control'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "[]"
    assert len(modules) > 20  # the walk found the package
