"""The experiment statistics on known values: Wilson and Newcombe intervals against Newcombe's
published examples, chi-square p-values and normal intervals against scipy, AUC against
scikit-learn, the power calculation by hand, and the verdict's three outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.experiments import stats
from control.experiments.errors import arm_errors_from_text
from control.experiments.srm import SRM_ALPHA, chi2_sf_1df, srm_test
from control.experiments.stats import Estimate
from control.experiments.verdict import MIN_POSITIVES, decide, outcomes_needed
from control.monitor.psi import score_psi


def test_wilson_matches_newcombe_1998_table_i() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I:
    # 81/263 -> 0.2553 to 0.3662 (score method without continuity correction); 15/148 ->
    # 0.0624 to 0.1605; 0/20 -> 0 to 0.1611.
    for (k, n), (low, high) in {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
    }.items():
        e = stats.wilson(k, n)
        assert (round(e.low, 4), round(e.high, 4)) == (low, high)
        assert e.value == pytest.approx(k / n)
    assert math.isnan(stats.wilson(0, 0).value)


def test_rate_difference_matches_newcombe_1998_method_10() -> None:
    # Newcombe (1998), "Interval estimation for the difference between independent
    # proportions", example (a): 56/70 - 48/80, hybrid score method 10: +0.0524 to +0.3339.
    e = stats.rate_difference(56, 70, 48, 80)
    assert e.value == pytest.approx(0.2)
    assert (round(e.low, 4), round(e.high, 4)) == (0.0524, 0.3339)


def test_chi_square_p_values_match_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for x in (0.0, 0.01, 1.0, 3.841458820694124, 10.83, 25.0, 80.0):
        assert chi2_sf_1df(x) == pytest.approx(
            float(scipy_stats.chi2.sf(x, 1)), rel=1e-9, abs=1e-300
        )
    observed = [4_870, 5_130]
    chi2, p = scipy_stats.chisquare(observed, [5_000, 5_000])
    result = srm_test(observed[0], observed[1], 0.5)
    assert (result.chi2, result.p_value) == (pytest.approx(chi2), pytest.approx(p))


def test_srm_flags_a_skewed_split_only() -> None:
    assert not srm_test(9_000, 1_000, 0.1).flagged
    assert srm_test(9_000, 1_000, 0.1).p_value == pytest.approx(1.0)
    skewed = srm_test(9_200, 800, 0.1)
    assert skewed.flagged
    assert skewed.p_value < SRM_ALPHA
    assert "SAMPLE RATIO MISMATCH" in skewed.describe()
    assert not srm_test(0, 0, 0.1).flagged


def test_normal_intervals_match_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 2.0, 500), rng.normal(0.5, 1.0, 800)
    m = stats.mean_interval(a)
    low, high = scipy_stats.norm.interval(0.95, loc=a.mean(), scale=scipy_stats.sem(a))
    assert (m.low, m.high) == (pytest.approx(low), pytest.approx(high))
    d = stats.mean_difference(a, b)
    se = math.sqrt(scipy_stats.sem(a) ** 2 + scipy_stats.sem(b) ** 2)
    assert d.low == pytest.approx(a.mean() - b.mean() - 1.959963984540054 * se)


def test_ratio_of_means_delta_method_covers_the_truth() -> None:
    # Predictions at twice the true rate: calibration about 2, and the interval's width
    # matches the spread of the ratio over independent samples.
    rng = np.random.default_rng(5)
    ratios, widths = [], []
    for _ in range(200):
        p = rng.uniform(0.01, 0.1, 4_000)
        y = (rng.random(4_000) < p / 2).astype(np.float64)
        e = stats.ratio_of_means(p, y)
        ratios.append(e.value)
        widths.append(e.high - e.low)
    spread = float(np.std(ratios)) * 2 * 1.96
    assert np.mean(ratios) == pytest.approx(2.0, rel=0.03)
    assert float(np.mean(widths)) == pytest.approx(spread, rel=0.15)


def test_auc_matches_scikit_learn_with_ties() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = (rng.random(5_000) < 0.1).astype(np.float64)
    s = np.round(rng.random(5_000) + 0.3 * y, 2)  # many ties
    assert stats.auc(y, s) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)
    assert math.isnan(stats.auc(np.zeros(5), s[:5]))


def test_bootstrap_is_seeded_and_bounded() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(3_000) < 0.2).astype(np.float64)
    s = rng.random(3_000) + 0.2 * y
    first, again = stats.auc_interval(y, s), stats.auc_interval(y, s)
    assert first == again
    assert first.low < first.value < first.high
    assert first.high - first.low < 0.1
    same = stats.paired_auc_difference(y, s, s)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)


def test_power_calculation_by_hand() -> None:
    # d = 0.01 with a standard error of 0.01 (interval +-0.0196) on 1,000 impressions:
    # n * ((1.96 + 0.8416) * 0.01 / 0.01)^2 = 7,849.
    z = 1.959963984540054
    e = Estimate(-0.01, -0.01 - z * 0.01, -0.01 + z * 0.01)
    assert outcomes_needed(e, 1_000) == 7_849
    assert outcomes_needed(Estimate(0.0, -1.0, 1.0), 1_000) is None


def test_the_verdict_reads_the_logloss_difference() -> None:
    enough = (MIN_POSITIVES, MIN_POSITIVES)
    better = decide(Estimate(-0.01, -0.015, -0.005), (1_000, 1_000), enough)
    assert better.outcome == "better"
    assert better.line.startswith("treatment better")
    worse = decide(Estimate(0.01, 0.005, 0.015), (1_000, 1_000), enough)
    assert worse.outcome == "worse"
    unsure = decide(Estimate(-0.001, -0.003, 0.001), (1_000, 1_000), enough)
    assert unsure.outcome == "not yet distinguishable"
    assert unsure.more_outcomes is not None
    assert unsure.more_outcomes > 0
    assert f"about {unsure.more_outcomes:,} more outcomes needed" in unsure.line
    few = decide(Estimate(-0.1, -0.2, -0.05), (1_000, 1_000), (MIN_POSITIVES - 1, 100))
    assert few.outcome == "not yet distinguishable"
    assert "too few outcomes" in few.line


def test_score_psi() -> None:
    rng = np.random.default_rng(2)
    control = rng.beta(2, 50, 20_000)
    assert score_psi(control, rng.beta(2, 50, 20_000)) < 0.01
    assert score_psi(control, control * 2.5) > 0.25


def test_per_arm_errors_from_a_metrics_exposition() -> None:
    name = "bidscore_experiment_requests_total"
    samples = [
        ("ctr", "1", "control", "OK", 990),
        ("ctr", "1", "control", "INTERNAL", 10),
        ("ctr", "2", "treatment", "OK", 95),
        ("ctr", "2", "treatment", "UNAVAILABLE", 5),
        ("cvr", "1", "control", "OK", 7),
    ]
    text = f"# HELP {name} Requests per arm.\n# TYPE {name} counter\n" + "".join(
        f'{name}{{model="{m}",version="{v}",arm="{a}",grpc_code="{c}"}} {n}\n'
        for m, v, a, c, n in samples
    )
    counts = arm_errors_from_text(text, "ctr")
    assert counts is not None
    assert (counts.rate("control"), counts.rate("treatment")) == (0.01, 0.05)
    assert arm_errors_from_text(text, "other") is None
    assert arm_errors_from_text("", "ctr") is None


@given(
    n=st.integers(min_value=1, max_value=10_000_000),
    share=st.floats(min_value=0.0, max_value=1.0),
)
def test_wilson_is_inside_0_1_and_holds_the_estimate(n: int, share: float) -> None:
    k = min(n, round(share * n))
    e = stats.wilson(k, n)
    assert 0.0 <= e.low <= e.value <= e.high <= 1.0


@given(
    k_t=st.integers(0, 5_000),
    n_t=st.integers(1, 5_000),
    k_c=st.integers(0, 5_000),
    n_c=st.integers(1, 5_000),
)
def test_newcombe_holds_the_difference_inside_minus_1_1(
    k_t: int, n_t: int, k_c: int, n_c: int
) -> None:
    e = stats.rate_difference(min(k_t, n_t), n_t, min(k_c, n_c), n_c)
    assert -1.0 - 1e-12 <= e.low <= e.value <= e.high <= 1.0 + 1e-12
