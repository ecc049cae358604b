"""Online accuracy: joining the prediction log with outcomes under an attribution window,
per-bucket metrics equal to computing them directly, and calibration flags on the planted
model (calibrated: no flag; scores x2: flagged)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from bidscore.registry import open_registry
from bidscore.settings import default_registry_url
from control import datagen
from control.cli.app import app
from control.metrics import evaluate
from control.monitor.attribution import AttributionWindows, attribute
from control.monitor.online import online_report
from control.monitor.outcomes import read_outcomes
from control.monitor.predictions import read_predictions
from control.monitor.sources import MonitorInputError
from features.bid import TARGETS
from tests.control.monitor_data import register, write_outcomes, write_prediction_log

HOUR = 3600.0
FAR_FUTURE = 4_000_000_000.0


@pytest.fixture(scope="module")
def traffic() -> pa.Table:
    """One day of requests with 4 candidates each; clicks drawn from the planted model."""
    return datagen.generate(40_000, seed=21, candidates=4)


def scores_table(rows: list[tuple[float, str, str, str, float]]) -> pa.Table:
    ts, rid, cid, model, score = zip(*rows, strict=True)
    return pa.table(
        {
            "ts": pa.array(ts, pa.float64()),
            "request_id": pa.array(rid, pa.string()),
            "candidate_id": pa.array(cid, pa.string()),
            "model": pa.array(model, pa.string()),
            "version": pa.array(["1"] * len(ts), pa.string()),
            "score": pa.array(score, pa.float64()),
        }
    )


def outcomes_table(rows: list[tuple[str, str, int, int, float | None]]) -> pa.Table:
    rid, cid, click, conversion, ts = zip(*rows, strict=True)
    return pa.table(
        {
            "request_id": pa.array(rid, pa.string()),
            "candidate_id": pa.array(cid, pa.string()),
            "ts": pa.array(ts, pa.float64()),
            "click": pa.array(click, pa.int8()),
            "conversion": pa.array(conversion, pa.int8()),
        }
    )


def test_attribution_window_decides_positive_negative_and_pending() -> None:
    scores = scores_table(
        [
            (0.0, "r1", "a", "ctr", 0.1),  # clicked after 100 s: positive
            (0.0, "r2", "a", "ctr", 0.1),  # clicked after 5000 s, window 3600 s: negative
            (0.0, "r3", "a", "ctr", 0.1),  # nothing, window closed: negative
            (9000.0, "r4", "a", "ctr", 0.1),  # nothing yet, window open: pending
            (9000.0, "r5", "a", "ctr", 0.1),  # clicked, event without a time: positive
        ]
    )
    outcomes = outcomes_table(
        [("r1", "a", 1, 0, 100.0), ("r2", "a", 1, 0, 5000.0), ("r5", "a", 1, 0, None)]
    )
    windows = AttributionWindows(default=HOUR)
    result = attribute(scores, outcomes, TARGETS, windows, as_of=10_000.0)
    labels = dict(
        zip(result.rows["request_id"].to_pylist(), result.rows["label"].to_pylist(), strict=True)
    )
    assert labels == {"r1": 1, "r2": 0, "r3": 0, "r5": 1}  # r4 left out
    assert result.pending == {("ctr", "1"): 1}


def test_cvr_is_judged_on_clicked_rows_with_its_own_window() -> None:
    scores = scores_table(
        [
            (0.0, "r1", "a", "cvr", 0.2),  # click + conversion in window: positive
            (0.0, "r2", "a", "cvr", 0.2),  # click, conversion window (1 d) still open: pending
            (0.0, "r3", "a", "cvr", 0.2),  # no click, click window closed: not judged
            (9500.0, "r4", "a", "cvr", 0.2),  # no click yet, click window open: pending
        ]
    )
    outcomes = outcomes_table(
        [("r1", "a", 1, 0, 30.0), ("r1", "a", 0, 1, 7200.0), ("r2", "a", 1, 0, 30.0)]
    )
    windows = AttributionWindows(default=HOUR, per_label={"conversion": 86_400.0})
    result = attribute(scores, outcomes, TARGETS, windows, as_of=10_000.0)
    assert result.rows["request_id"].to_pylist() == ["r1"]
    assert result.rows["label"].to_pylist() == [1]
    assert result.pending == {("cvr", "1"): 2}

    later = attribute(scores, outcomes, TARGETS, windows, as_of=200_000.0)
    labels = dict(
        zip(later.rows["request_id"].to_pylist(), later.rows["label"].to_pylist(), strict=True)
    )
    assert labels == {"r1": 1, "r2": 0}  # r3 and r4 were never clicked: never judged
    assert later.pending == {}


def test_unknown_model_in_the_log_is_a_clear_error() -> None:
    scores = scores_table([(0.0, "r1", "a", "mystery", 0.1)])
    with pytest.raises(MonitorInputError, match="no label is known for model"):
        attribute(
            scores, outcomes_table([("r1", "a", 1, 0, 1.0)]), TARGETS, AttributionWindows(), 1.0
        )


def test_metrics_from_the_log_equal_metrics_computed_directly(traffic, tmp_path: Path) -> None:
    planted = datagen.planted_ctr(traffic)
    write_prediction_log(tmp_path / "log", traffic, planted)
    write_outcomes(tmp_path / "outcomes" / "clicks.parquet", traffic)

    log = read_predictions([str(tmp_path / "log")])
    assert log.scores.num_rows == traffic.num_rows
    outcomes = read_outcomes([str(tmp_path / "outcomes")], ["click", "conversion"])
    attributed = attribute(log.scores, outcomes, TARGETS, AttributionWindows(), as_of=FAR_FUTURE)
    report = online_report(attributed, bucket_seconds=6 * HOUR)

    # Directly: the same scores (as float32, what the wire carries) and labels, no log, no join.
    labels = traffic["click"].to_numpy()
    scores = np.asarray(planted, dtype=np.float32).astype(np.float64)
    (total,) = report.totals
    direct = evaluate(labels, scores)
    assert total.count == traffic.num_rows
    assert total.positives == int(labels.sum())
    for name in ("logloss", "auc", "ne", "calibration"):
        assert getattr(total, name) == pytest.approx(getattr(direct, name), rel=1e-9), name

    bucket_of = np.floor(traffic["ts"].to_numpy() / (6 * HOUR)) * 6 * HOUR
    assert [b.start for b in report.buckets] == sorted(set(bucket_of.tolist()))
    for b in report.buckets:
        sel = bucket_of == b.start
        expected = evaluate(labels[sel], scores[sel])
        assert b.count == int(sel.sum())
        assert b.logloss == pytest.approx(expected.logloss, rel=1e-9)
        assert b.auc == pytest.approx(expected.auc, rel=1e-9)
        assert b.calibration == pytest.approx(expected.calibration, rel=1e-9)


def test_miscalibrated_model_is_flagged_and_a_calibrated_one_is_not(
    traffic, tmp_path: Path
) -> None:
    planted = datagen.planted_ctr(traffic)
    outcomes = read_outcomes([str(write_outcomes(tmp_path / "o.parquet", traffic))], ["click"])
    reports = {}
    for name, factor in (("calibrated", 1.0), ("doubled", 2.0)):
        write_prediction_log(tmp_path / name, traffic, np.clip(planted * factor, 0, 1))
        log = read_predictions([str(tmp_path / name)])
        attributed = attribute(
            log.scores, outcomes, TARGETS, AttributionWindows(), as_of=FAR_FUTURE
        )
        reports[name] = online_report(attributed, bucket_seconds=6 * HOUR)

    calibrated, doubled = reports["calibrated"], reports["doubled"]
    assert all(b.positives >= 100 for b in calibrated.buckets)
    assert calibrated.flags == []
    assert all(0.85 < b.calibration < 1.15 for b in calibrated.buckets)
    flagged = [f for f in doubled.flags if f.check == "online.calibration"]
    assert len(flagged) == len(doubled.buckets) == 4
    assert all(f.value > 1.6 for f in flagged)


def test_logloss_above_the_training_logloss_is_flagged(traffic, tmp_path: Path) -> None:
    planted = datagen.planted_ctr(traffic)
    write_prediction_log(tmp_path / "log", traffic, planted)
    log = read_predictions([str(tmp_path / "log")])
    outcomes = read_outcomes([str(write_outcomes(tmp_path / "o.parquet", traffic))], ["click"])
    attributed = attribute(log.scores, outcomes, TARGETS, AttributionWindows(), as_of=FAR_FUTURE)
    total = online_report(attributed).totals[0].logloss

    def logloss_flags(trained: float) -> list:
        report = online_report(
            attributed, bucket_seconds=24 * HOUR, training_logloss={("ctr", "1"): trained}
        )
        return [f for f in report.flags if f.check == "online.logloss"]

    # Trained better than it serves: flagged. Trained about as well: not.
    (flag,) = logloss_flags(total * 0.7)
    assert flag.value == pytest.approx(total)
    assert flag.threshold == pytest.approx(total * 0.7 * 1.1)
    assert logloss_flags(total) == []


def test_online_cli_reports_buckets_and_flags(traffic, tmp_path: Path, bidscore_home: Path) -> None:
    trained = {
        "logloss": 0.1,
        "auc": 0.75,
        "ne": 0.8,
        "calibration": 1.0,
        "rows": 10,
        "positives": 1,
    }
    register(open_registry(default_registry_url()), "ctr", traffic.slice(0, 100), metrics=trained)
    planted = datagen.planted_ctr(traffic)
    write_prediction_log(tmp_path / "log", traffic, np.clip(planted * 2, 0, 1))
    write_outcomes(tmp_path / "outcomes" / "day1.parquet", traffic)
    args = [
        "monitor",
        "online",
        "--predictions",
        str(tmp_path / "log"),
        "--outcomes",
        str(tmp_path / "outcomes"),
        "--bucket",
        "12h",
        "--window",
        "1h",
        "--as-of",
        "2026-12-01T00:00:00Z",
    ]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [b["start_utc"] for b in data["buckets"]] == [
        "2026-11-01T00:00:00Z",
        "2026-11-01T12:00:00Z",
    ]
    assert {f["check"] for f in data["flags"]} == {"online.calibration", "online.logloss"}
    assert data["totals"][0]["count"] == traffic.num_rows

    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "online accuracy per 12h bucket" in table.stdout
    assert "flags" in table.stdout

    bad = runner.invoke(app, [*args[:-2], "--as-of", "yesterday-ish"])
    assert bad.exit_code == 1
    assert "not a time" in bad.stderr

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "predictions-x.jsonl").write_text('{"ts": 1}\n')
    broken = runner.invoke(
        app,
        [
            "monitor",
            "online",
            "--predictions",
            str(tmp_path / "broken"),
            "--outcomes",
            str(tmp_path / "outcomes"),
        ],
    )
    assert broken.exit_code == 1
    assert "predictions-x.jsonl:1: not a prediction log record" in broken.stderr


def test_missing_input_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(MonitorInputError, match="no such file or directory"):
        read_predictions([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MonitorInputError, match=r"no prediction log files \(\*.jsonl\) in"):
        read_predictions([str(tmp_path / "empty")])
    (tmp_path / "o.csv").write_text("request_id,candidate_id,click\nr1,c1,2\n")
    with pytest.raises(MonitorInputError, match=r"o.csv: column 'click' must hold 0 or 1"):
        read_outcomes([str(tmp_path / "o.csv")], ["click"])
    (tmp_path / "k.csv").write_text("request_id,click\nr1,1\n")
    with pytest.raises(
        MonitorInputError, match=r"k.csv: outcome file lacks column\(s\) \['candidate_id'\]"
    ):
        read_outcomes([str(tmp_path / "k.csv")], ["click"])


def test_outcomes_from_csv_and_jsonl_are_merged(tmp_path: Path) -> None:
    (tmp_path / "clicks.csv").write_text("request_id,candidate_id,click,ts\n007,1,1,10\n")
    (tmp_path / "conv.jsonl").write_text(
        '{"request_id": "007", "candidate_id": "1", "conversion": 1}\n'
    )
    table = read_outcomes(
        [str(tmp_path / "clicks.csv"), str(tmp_path / "*.jsonl")], ["click", "conversion"]
    )
    rows = sorted(table.to_pylist(), key=lambda r: r["click"])
    # Ids stay text ("007"), absent labels are 0, absent times are null (in time).
    assert rows == [
        {"request_id": "007", "candidate_id": "1", "ts": None, "click": 0, "conversion": 1},
        {"request_id": "007", "candidate_id": "1", "ts": 10.0, "click": 1, "conversion": 0},
    ]


@pytest.mark.aws
def test_log_and_outcomes_read_from_s3_prefixes(moto_server: str, traffic, tmp_path: Path) -> None:
    bucket = f"monitor-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    query = f"?endpoint_url={moto_server}&region=us-east-1"
    sample = traffic.slice(0, 2000)
    planted = datagen.planted_ctr(sample)
    write_prediction_log(f"s3://{bucket}/preds{query}", sample, planted)
    local = write_outcomes(tmp_path / "o.parquet", sample)
    s3.upload_file(str(local), bucket, "outcomes/day=1/o.parquet")

    log = read_predictions([f"s3://{bucket}/preds{query}"])
    assert log.scores.num_rows == sample.num_rows
    outcomes = read_outcomes([f"s3://{bucket}/outcomes{query}"], ["click"])
    attributed = attribute(log.scores, outcomes, TARGETS, AttributionWindows(), as_of=FAR_FUTURE)
    (total,) = online_report(attributed, bucket_seconds=24 * HOUR).totals
    direct = evaluate(
        sample["click"].to_numpy(), np.asarray(planted, np.float32).astype(np.float64)
    )
    assert total.auc == pytest.approx(direct.auc, rel=1e-9)

    with pytest.raises(MonitorInputError, match="cannot read s3://no-such-bucket"):
        read_predictions([f"s3://no-such-bucket/preds{query}"])
