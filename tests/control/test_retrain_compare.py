"""The gates that decide whether a retrained challenger replaces the champion."""

from __future__ import annotations

from control.promotion import AUC_TOLERANCE, LOGLOSS_TOLERANCE
from control.retrain.compare import gate_failures, gates, metric_row, summary


def metrics(logloss: float, auc: float, ne: float = 0.9, calibration: float = 1.0) -> dict:
    return {"logloss": logloss, "auc": auc, "ne": ne, "calibration": calibration, "rows": 100,
            "positives": 5}  # fmt: skip


def comparison(challenger: dict, champion: dict | None, version: str = "1") -> dict:
    data = {
        "challenger": {"metrics": challenger},
        "champion": None if champion is None else {"version": version, "metrics": champion},
    }
    data["gates"] = gates(data)
    return data


def test_first_model_needs_only_to_beat_the_base_rate():
    assert gate_failures(comparison(metrics(0.1, 0.7, ne=0.95), None)) == []
    failed = gate_failures(comparison(metrics(0.1, 0.7, ne=1.02), None))
    assert len(failed) == 1
    assert failed[0].startswith("beats_base_rate: challenger NE 1.02000")


def test_tolerances_of_control_promote_apply_on_the_shared_holdout():
    champion = metrics(0.100, 0.700)
    within = metrics(0.100 * (1 + LOGLOSS_TOLERANCE) * 0.999, 0.700 - AUC_TOLERANCE * 0.9)
    assert gate_failures(comparison(within, champion)) == []
    worse = metrics(0.100 * (1 + LOGLOSS_TOLERANCE) * 1.01, 0.700 - AUC_TOLERANCE * 2)
    failed = gate_failures(comparison(worse, champion))
    assert [f.split(":")[0] for f in failed] == ["logloss", "auc"]
    assert "vs champion v1 0.100000" in failed[0]


def test_champion_that_cannot_be_scored_holds_the_challenger():
    data = {
        "challenger": {"metrics": metrics(0.1, 0.7)},
        "champion": {"version": "3", "metrics": None},
        "note": "champion v3 cannot be scored: feature spec mismatch",
    }
    data["gates"] = gates(data)
    assert gate_failures(data) == [
        "champion_comparable: champion v3 cannot be scored: feature spec mismatch"
    ]
    assert "not comparable" in summary(data)


def test_rows_say_which_model_is_better_per_metric():
    old, new = metrics(0.12, 0.70, calibration=1.2), metrics(0.11, 0.69, calibration=0.9)
    assert metric_row("logloss", old, new)["better"] == "challenger"
    assert metric_row("auc", old, new)["better"] == "champion"
    assert metric_row("calibration", old, new)["better"] == "challenger"  # |0.9-1| < |1.2-1|
    assert metric_row("auc", None, new) == {
        "metric": "auc", "champion": None, "challenger": 0.69, "delta": None, "better": None,
    }  # fmt: skip
    assert gate_failures({}) == ["no comparison recorded"]
