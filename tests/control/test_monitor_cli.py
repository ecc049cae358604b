"""End to end through the `control` CLI with really trained versions: a distribution shift on
day D raises PSI alarms for the version trained after D and makes `control promote` refuse it
(unless --force); training data shrinking by half is flagged offline and in the drift view."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bidscore.registry import open_registry
from control import datagen
from control.cli.app import app
from control.exits import EXIT_ALARM

SHIFT_DAY = 2
ROWS_PER_DAY = 4000

pytestmark = pytest.mark.timeout(240)


def control(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def train(paths: list[Path]) -> str:
    """Train ctr (as LR: a small model file) on `paths`; returns the new version."""
    data = [arg for path in paths for arg in ("--data", str(path))]
    code, out, err = control(
        "train", "--model", "ctr", "--algo", "lr", "--epochs", "3", *data, "--json"
    )
    assert code == 0, err
    return str(json.loads(out)["version"])


@pytest.fixture
def logs(tmp_path: Path) -> dict[str, list[Path]]:
    shifted = datagen.write_dataset(
        tmp_path / "logs", ROWS_PER_DAY, seed=17, days=4, shift_from_day=SHIFT_DAY
    ).files
    shrunk = datagen.write_dataset(
        tmp_path / "later",
        ROWS_PER_DAY,
        seed=18,
        days=2,
        start="2026-11-05",
        shift_from_day=0,
        shrink_from_day=0,
        shrink_factor=0.5,
    ).files
    return {"before": shifted[:SHIFT_DAY], "after": shifted[SHIFT_DAY:], "shrunk": shrunk}


def test_shift_and_shrink_through_the_cli(logs: dict[str, list[Path]], bidscore_home: Path) -> None:
    assert train(logs["before"]) == "1"
    assert control("promote", "ctr", "1")[0] == 0
    # One version, nothing to compare: no alarm, so --fail-on-alarm exits 0.
    assert control("monitor", "drift", "ctr", "--fail-on-alarm")[0] == 0
    assert train(logs["after"]) == "2"

    # The version trained after the shift: PSI alarms on the shifted features, none elsewhere.
    code, out, err = control("monitor", "drift", "ctr", "--json")
    assert code == 0, err
    drift = json.loads(out)
    (comparison,) = drift["comparisons"]
    shifted = set(datagen.SHIFTED_FEATURES)
    for feature in comparison["features"]:
        if feature["feature"] in shifted:
            assert feature["psi"] > 0.25, feature
        else:
            assert feature["psi"] < 0.25, feature
    alarms = {f["subject"] for f in drift["flags"] if f["severity"] == "alarm"}
    assert alarms == {"device_os", "device_model", "app_id", "app_category", "publisher_id"}
    # --fail-on-alarm: the same report (still one JSON document), exit 4 and one line why.
    code, out, err = control("monitor", "drift", "ctr", "--json", "--fail-on-alarm")
    assert code == EXIT_ALARM == 4
    assert json.loads(out)["flags"] == drift["flags"]
    [line] = err.strip().splitlines()
    assert line.startswith("error: 5 drift alarm(s) for ctr:")

    # ... so the promotion gate refuses it, and --force overrides the gate.
    code, _, err = control("promote", "ctr", "2")
    assert code == 4
    assert "drift alarm: app_id PSI" in err
    assert len(err.strip().splitlines()) == 1
    assert control("promote", "ctr", "2", "--force")[0] == 0

    # Half the training data: flagged offline and in the row-count trend.
    assert train(logs["shrunk"]) == "3"
    code, out, err = control("monitor", "offline", "ctr", "--json")
    assert code == 0, err
    offline = json.loads(out)
    assert [v["version"] for v in offline["versions"]] == ["1", "2", "3"]
    rows = {f["version"]: f["value"] for f in offline["flags"] if f["check"] == "offline.rows"}
    assert list(rows) == ["3"]
    assert rows["3"] == pytest.approx(0.5, abs=0.01)
    drift = json.loads(control("monitor", "drift", "ctr", "--json")[1])
    assert [f["version"] for f in drift["flags"] if f["check"] == "drift.rows"] == ["3"]
    # v3's data is shifted like v2's: no new alarm between them.
    assert not [f for f in drift["flags"] if f["version"] == "3" and f["severity"] == "alarm"]


def test_the_installed_entry_point_runs_monitor(bidscore_home: Path) -> None:
    # An empty registry: reading commands refuse one that does not exist at all.
    open_registry(f"sqlite://{bidscore_home / 'registry.db'}")
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "control"), "monitor", "offline", "ctr"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr.strip() == "error: model 'ctr' has no registered versions"
