"""`control datagen`: the command writes what control.datagen writes, and says so in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from control.cli.app import app
from control.datagen import write_dataset
from features.readers import list_partitions, read_logs

runner = CliRunner()


def test_single_file_matches_the_library_byte_for_byte(tmp_path: Path):
    out = tmp_path / "logs.parquet"
    result = runner.invoke(
        app, ["datagen", "--rows", "3000", "--seed", "4", "--candidates", "3", "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert result.output.startswith("wrote 3,000 rows, CTR ")
    assert "CVR" in result.output
    library = tmp_path / "library.parquet"
    write_dataset(library, 3000, seed=4, candidates=3)
    assert out.read_bytes() == library.read_bytes()


def test_days_write_partitions_and_json_summary(tmp_path: Path):
    out = tmp_path / "logs"
    args = ["datagen", "--rows", "500", "--seed", "2", "--out", str(out), "--days", "3"]
    args += ["--downsample-negatives", "0.5", "--shift-from-day", "1"]
    args += ["--shrink-from-day", "2", "--shrink-factor", "0.4", "--start", "2026-12-30", "--json"]

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    parts = list_partitions(out)
    assert [p.date.isoformat() for p in parts] == ["2026-12-30", "2026-12-31", "2027-01-01"]
    assert summary["rows"] == sum(p.rows for p in parts)
    assert summary["files"] == [str(out / f"dt={p.date}" / "part-0.parquet") for p in parts]
    table = read_logs(out)
    assert summary["clicks"] == table["click"].to_numpy().sum()
    assert pq.read_schema(summary["files"][0]).metadata[b"bidscore.downsample_rate"] == b"0.5"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "10", "--out", "x.txt"], "output must end in .parquet, .csv or .jsonl"),
        (["--rows", "10", "--out", "x.parquet", "--downsample-negatives", "3"], "downsample"),
        (["--rows", "10", "--out", "x.parquet", "--shift-from-day", "2"], "need --days"),
        (["--rows", "10", "--out", "x.parquet", "--start", "soon"], "YYYY-MM-DD"),
    ],
)
def test_bad_options_fail_with_one_line(tmp_path: Path, args: list[str], message: str):
    result = runner.invoke(app, ["datagen", *args])

    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.timeout(60)
def test_installed_entry_point_runs(tmp_path: Path):
    control = Path(sys.executable).with_name("control")
    out = tmp_path / "logs.csv"

    done = subprocess.run(
        [str(control), "datagen", "--rows", "200", "--seed", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "wrote 200 rows" in done.stdout
    assert read_logs(out).num_rows == 200


def test_existing_output_is_refused_unless_forced(tmp_path: Path):
    # Defect 11: an existing file was overwritten, and partitions were mixed into an existing
    # directory, without a word.
    out = tmp_path / "logs.parquet"
    out.write_bytes(b"precious")
    args = ["datagen", "--rows", "100", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "exists" in result.output
    assert "--force" in result.output
    assert out.read_bytes() == b"precious"
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert pq.read_table(out).num_rows == 100

    root = tmp_path / "days"
    (root / "dt=2020-01-01").mkdir(parents=True)
    (root / "dt=2020-01-01" / "part-0.parquet").write_bytes(b"other data")
    args = ["datagen", "--rows", "50", "--days", "2", "--out", str(root)]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "not empty" in result.output
    assert "--force" in result.output
    assert sorted(p.name for p in root.iterdir()) == ["dt=2020-01-01"]
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert len(list(root.iterdir())) == 3


def test_a_log_gets_one_plain_line_per_day(tmp_path: Path):
    # stderr is a pipe here, as under cron or CI: no bar, one line per day written.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "control",
            "datagen",
            "--rows",
            "200",
            "--days",
            "3",
            "--out",
            str(tmp_path / "logs"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stderr.splitlines() == ["wrote day 1/3", "wrote day 2/3", "wrote day 3/3"]
    assert proc.stdout.startswith("wrote 600 rows")
