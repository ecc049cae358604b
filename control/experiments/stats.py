"""Confidence intervals for the per-arm metrics of an experiment (numpy and math only).

Methods, all at 95 % unless `level` says otherwise:
- a rate (clicks / impressions): Wilson score interval;
- a difference of two rates: Newcombe's hybrid score interval (from the two Wilson intervals);
- a mean of per-row values (mean prediction, per-impression logloss): normal interval on the
  sample mean (central limit theorem; rows number in the thousands);
- a ratio of two means over the same rows (calibration = mean prediction / observed rate):
  delta method, with the covariance of the two means;
- AUC, and a difference of AUCs: percentile bootstrap, seeded, with a bounded number of
  resamples of a bounded number of rows (`BOOTSTRAP_RESAMPLES`, `BOOTSTRAP_MAX_ROWS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_MAX_ROWS = 50_000
BOOTSTRAP_SEED = 20261127
# Predictions are clipped like the offline metrics do before taking logs.
EPS = 1e-15


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its confidence interval (NaN where undefined)."""

    value: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"value": _num(self.value), "low": _num(self.low), "high": _num(self.high)}


NAN = Estimate(math.nan, math.nan, math.nan)


def _num(x: float) -> float | None:
    """JSON has no NaN: undefined values are null."""
    return None if not math.isfinite(x) else x


def z_of(level: float = LEVEL) -> float:
    """The two-sided normal quantile: 1.96 at 95 %."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(successes: int, n: int, level: float = LEVEL) -> Estimate:
    """Wilson score interval of a binomial proportion."""
    if n <= 0:
        return NAN
    z = z_of(level)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At p = 0 or 1 the bound equals p exactly; rounding must not put it on the wrong side.
    return Estimate(p, min(max(0.0, centre - half), p), max(min(1.0, centre + half), p))


def rate_difference(
    successes_t: int, n_t: int, successes_c: int, n_c: int, level: float = LEVEL
) -> Estimate:
    """Treatment - control of two independent proportions: Newcombe's hybrid score interval
    (method 10 of Newcombe 1998), which stays inside [-1, 1] and behaves at small rates."""
    if n_t <= 0 or n_c <= 0:
        return NAN
    t, c = wilson(successes_t, n_t, level), wilson(successes_c, n_c, level)
    d = t.value - c.value
    low = d - math.sqrt((t.value - t.low) ** 2 + (c.high - c.value) ** 2)
    high = d + math.sqrt((t.high - t.value) ** 2 + (c.value - c.low) ** 2)
    return Estimate(d, low, high)


def mean_interval(values: FloatArray, level: float = LEVEL) -> Estimate:
    """Sample mean with a normal interval (standard error = sd / sqrt(n))."""
    n = values.size
    if n == 0:
        return NAN
    mean = float(values.mean())
    if n < 2:
        return Estimate(mean, math.nan, math.nan)
    half = z_of(level) * float(values.std(ddof=1)) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half)


def mean_difference(a: FloatArray, b: FloatArray, level: float = LEVEL) -> Estimate:
    """mean(a) - mean(b) of two independent samples (Welch's standard error, normal)."""
    if a.size < 2 or b.size < 2:
        return NAN
    d = float(a.mean() - b.mean())
    se = math.sqrt(float(a.var(ddof=1)) / a.size + float(b.var(ddof=1)) / b.size)
    half = z_of(level) * se
    return Estimate(d, d - half, d + half)


def paired_difference(a: FloatArray, b: FloatArray, level: float = LEVEL) -> Estimate:
    """mean(a - b) over the same rows (a shadow's treatment and control on each impression)."""
    return mean_interval(a - b, level)


def ratio_of_means(x: FloatArray, y: FloatArray, level: float = LEVEL) -> Estimate:
    """mean(x) / mean(y) over the same rows, delta-method interval:
    Var(R) ≈ (Var(x̄) - 2R Cov(x̄, ȳ) + R² Var(ȳ)) / ȳ²."""
    n = x.size
    if n < 2 or float(y.mean()) <= 0.0:
        return NAN
    mx, my = float(x.mean()), float(y.mean())
    r = mx / my
    cov = np.cov(x, y, ddof=1)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / n / (my * my)
    half = z_of(level) * math.sqrt(max(float(var), 0.0))
    return Estimate(r, r - half, r + half)


def ratio_difference(t: Estimate, c: Estimate, level: float = LEVEL) -> Estimate:
    """Difference of two independent estimates with normal intervals (standard errors read
    back from the intervals, combined in quadrature)."""
    if not all(math.isfinite(v) for v in (t.low, t.high, c.low, c.high)):
        return NAN
    z = z_of(level)
    se = math.hypot((t.high - t.low) / (2 * z), (c.high - c.low) / (2 * z))
    d = t.value - c.value
    return Estimate(d, d - z * se, d + z * se)


def row_logloss(labels: FloatArray, scores: FloatArray) -> FloatArray:
    """Per-impression log loss; its mean is the usual logloss."""
    p = np.clip(scores, EPS, 1 - EPS)
    out: FloatArray = -(labels * np.log(p) + (1 - labels) * np.log1p(-p))
    return out


class _Ranked:
    """Rows grouped by distinct score, ascending, so that the AUC of any weighting of the rows
    (a bootstrap resample is a weighting: how often each row was drawn) costs O(n), not a sort."""

    def __init__(self, labels: FloatArray, scores: FloatArray) -> None:
        _, self.group = np.unique(scores, return_inverse=True)
        self.groups = int(self.group.max()) + 1 if scores.size else 0
        self.labels = labels

    def auc(self, weights: FloatArray) -> float:
        """Weighted AUC: P(score of a positive > score of a negative), ties counting half."""
        pos = np.bincount(self.group, weights=weights * self.labels, minlength=self.groups)
        neg = np.bincount(self.group, weights=weights * (1 - self.labels), minlength=self.groups)
        total_pos, total_neg = float(pos.sum()), float(neg.sum())
        if total_pos <= 0 or total_neg <= 0:
            return math.nan
        below = np.cumsum(neg) - neg
        return float(np.sum(pos * (below + 0.5 * neg))) / (total_pos * total_neg)


def auc(labels: FloatArray, scores: FloatArray) -> float:
    """Area under the ROC curve (ties count half); NaN with one class."""
    if labels.size == 0:
        return math.nan
    return _Ranked(labels, scores).auc(np.ones(labels.size))


def _weights(n: int, rng: np.random.Generator) -> FloatArray:
    """One bootstrap resample as row weights: at most BOOTSTRAP_MAX_ROWS draws with
    replacement (the cost of a resample stays bounded)."""
    draws = rng.integers(0, n, size=min(n, BOOTSTRAP_MAX_ROWS))
    return np.bincount(draws, minlength=n).astype(np.float64)


def _rescaled(point: float, samples: FloatArray, n: int) -> FloatArray:
    """Resamples of m < n rows spread like sqrt(n / m) times an n-row resample would (AUC's
    standard error shrinks as 1 / sqrt(n)); scale them back to stand for all n rows."""
    m = min(n, BOOTSTRAP_MAX_ROWS)
    if m < n and math.isfinite(point):
        return point + (samples - np.nanmean(samples)) * math.sqrt(m / n)
    return samples


def bootstrap_aucs(
    labels: FloatArray, scores: FloatArray, seed: int = BOOTSTRAP_SEED
) -> FloatArray:
    """AUC of each of BOOTSTRAP_RESAMPLES seeded resamples (see `_rescaled` for arms larger
    than BOOTSTRAP_MAX_ROWS)."""
    n = labels.size
    rng = np.random.default_rng(seed)
    ranked = _Ranked(labels, scores)
    out = np.array([ranked.auc(_weights(n, rng)) for _ in range(BOOTSTRAP_RESAMPLES)])
    return _rescaled(ranked.auc(np.ones(n)), out, n)


def percentile(point: float, samples: FloatArray, level: float = LEVEL) -> Estimate:
    finite = samples[np.isfinite(samples)]
    if not math.isfinite(point) or finite.size < 0.9 * samples.size:
        return Estimate(point, math.nan, math.nan)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Estimate(point, float(low), float(high))


def auc_interval(labels: FloatArray, scores: FloatArray, seed: int = BOOTSTRAP_SEED) -> Estimate:
    """AUC with a percentile-bootstrap interval."""
    if labels.size == 0:
        return NAN
    return percentile(auc(labels, scores), bootstrap_aucs(labels, scores, seed))


def auc_difference(
    t: tuple[FloatArray, FloatArray],
    c: tuple[FloatArray, FloatArray],
    seed: int = BOOTSTRAP_SEED,
) -> Estimate:
    """AUC(treatment) - AUC(control), two independent samples (labels, scores): percentile
    bootstrap of the difference of independent resamples."""
    if t[0].size == 0 or c[0].size == 0:
        return NAN
    point = auc(*t) - auc(*c)
    diffs = bootstrap_aucs(*t, seed=seed) - bootstrap_aucs(*c, seed=seed + 1)
    return percentile(point, diffs)


def paired_auc_difference(
    labels: FloatArray, treatment: FloatArray, control: FloatArray, seed: int = BOOTSTRAP_SEED
) -> Estimate:
    """AUC(treatment) - AUC(control) on the same rows (shadow mode): each resample draws rows
    once and scores both, so what the two share cancels out."""
    n = labels.size
    if n == 0:
        return NAN
    t, c = _Ranked(labels, treatment), _Ranked(labels, control)
    ones = np.ones(n)
    point = t.auc(ones) - c.auc(ones)
    rng = np.random.default_rng(seed)
    diffs = np.empty(BOOTSTRAP_RESAMPLES)
    for i in range(BOOTSTRAP_RESAMPLES):
        w = _weights(n, rng)
        diffs[i] = t.auc(w) - c.auc(w)
    return percentile(point, _rescaled(point, diffs, n))
