"""The contract ships inside the Python package: scorer.proto next to its generated code."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scorer_proto_is_package_data_identical_to_proto_dir() -> None:
    # The package next to this checkout (the venv may be another checkout's editable install).
    shipped = ROOT / "bidscore/v1/scorer.proto"
    assert shipped.is_file()
    assert shipped.read_bytes() == (ROOT / "proto/bidscore/v1/scorer.proto").read_bytes()


def test_wheel_includes_the_proto() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["maturin"]
    paths = [entry["path"] for entry in config["include"]]
    assert "bidscore/v1/*.proto" in paths


def test_proto_names_packages_for_other_languages() -> None:
    text = (ROOT / "proto/bidscore/v1/scorer.proto").read_text()
    for option in ("java_package", "java_multiple_files", "go_package"):
        assert f"option {option}" in text
