"""Offline metrics: checked against their definitions computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from control.errors import TrainingInputError
from control.metrics import binary_entropy, evaluate


def test_metrics_match_their_definitions() -> None:
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 0])
    preds = np.array([0.9, 0.2, 0.1, 0.6, 0.3, 0.05, 0.7, 0.1])
    m = evaluate(labels, preds)
    expected_ll = -np.mean(labels * np.log(preds) + (1 - labels) * np.log(1 - preds))
    assert m.logloss == pytest.approx(expected_ll)
    # AUC = share of (positive, negative) pairs ranked correctly: 0.6 loses to 0.7 only.
    assert m.auc == pytest.approx(11 / 12)
    assert m.base_rate == pytest.approx(0.25)
    assert m.ne == pytest.approx(expected_ll / binary_entropy(0.25))
    assert m.calibration == pytest.approx(preds.mean() / 0.25)
    assert (m.rows, m.positives) == (8, 2)


def test_weights_stand_for_downsampled_negatives() -> None:
    # Negatives kept at rate 1/2 with weight 2 must score like the full data set.
    full_labels = np.array([1, 0, 0, 0, 0])
    full_preds = np.array([0.7, 0.2, 0.2, 0.4, 0.4])
    weighted = evaluate([1, 0, 0], [0.7, 0.2, 0.4], weights=[1.0, 2.0, 2.0])
    full = evaluate(full_labels, full_preds)
    assert weighted.logloss == pytest.approx(full.logloss)
    assert weighted.auc == pytest.approx(full.auc)
    assert weighted.base_rate == pytest.approx(0.2)
    assert weighted.calibration == pytest.approx(full.calibration)
    assert (weighted.rows, weighted.positives) == (3, 1)


def test_confident_mistakes_cost_a_finite_logloss() -> None:
    m = evaluate([1, 0], [0.0, 1.0])
    assert math.isfinite(m.logloss)
    assert m.logloss > 15


def test_entropy() -> None:
    assert binary_entropy(0.5) == pytest.approx(math.log(2))
    assert binary_entropy(0.0) == binary_entropy(1.0) == 0.0


@pytest.mark.parametrize(
    ("labels", "preds", "message"),
    [
        ([], [], "no rows"),
        ([1, 1, 1], [0.5, 0.5, 0.5], "only one label value"),
        ([0, 0], [0.5, 0.5], "only one label value"),
        ([0, 2], [0.5, 0.5], "0 or 1"),
        ([0, 1], [0.5], "differ in length"),
        ([0, 1], [0.5, float("nan")], "NaN"),
    ],
)
def test_unevaluable_rows_are_one_line_errors(labels, preds, message: str) -> None:
    with pytest.raises(TrainingInputError, match=message):
        evaluate(labels, preds)
