"""Offline metrics: checked against their definitions computed by hand, and against
scikit-learn (a dev dependency; the implementation is numpy only)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from control.errors import TrainingInputError
from control.metrics import EPS, binary_entropy, evaluate, weighted_auc
from tests.test_layers import imported_packages


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


# --- the numpy implementation against scikit-learn (a dev dependency only) ------------------


@st.composite
def scored_rows(
    draw: st.DrawFn,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    n = draw(st.integers(min_value=2, max_value=200))
    labels = np.array(draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n)))
    assume(0 < labels.sum() < n)
    # Few distinct values, so that ties (the tricky part of AUC) are common.
    levels = draw(st.sampled_from([3, 10, 1000]))
    preds = np.array(
        draw(st.lists(st.integers(0, levels), min_size=n, max_size=n)), dtype=float
    ) / (levels + 1)
    weights = None
    if draw(st.booleans()):
        weights = np.array(
            draw(st.lists(st.floats(0.1, 10.0), min_size=n, max_size=n)), dtype=float
        )
    return labels, preds, weights


@given(scored_rows())
def test_auc_and_logloss_agree_with_scikit_learn(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray | None],
) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    labels, preds, weights = rows
    m = evaluate(labels, preds, weights=weights)
    clipped = np.clip(preds, EPS, 1 - EPS)
    assert m.auc == pytest.approx(
        sklearn_metrics.roc_auc_score(labels, clipped, sample_weight=weights), abs=1e-12
    )
    assert m.logloss == pytest.approx(
        sklearn_metrics.log_loss(labels, clipped, sample_weight=weights, labels=[0, 1]),
        rel=1e-9,
    )


def test_auc_of_a_large_sample_agrees_with_scikit_learn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    preds = rng.random(50_000).round(3)  # many ties
    labels = (rng.random(50_000) < preds * 0.3).astype(int)
    weights = np.where(labels == 1, 1.0, 4.0)
    assert weighted_auc(labels.astype(float), preds, weights) == pytest.approx(
        sklearn_metrics.roc_auc_score(labels, preds, sample_weight=weights), abs=1e-12
    )


def test_the_control_plane_imports_no_scikit_learn() -> None:
    """Training, promotion and serving run without scikit-learn installed."""
    repo = Path(__file__).resolve().parents[2]
    offenders = [
        f"{path.relative_to(repo)}:{line}"
        for package in ("control", "pyserver", "bidscore", "features")
        for path in sorted((repo / package).rglob("*.py"))
        for line, name in imported_packages(path)
        if name == "sklearn"
    ]
    assert offenders == []
