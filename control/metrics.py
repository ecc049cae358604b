"""Offline metrics of a CTR/CVR model on held-out rows.

- `logloss`: mean negative log-likelihood (weighted when rows carry weights);
- `auc`: area under the ROC curve (tied predictions count one half);
- `ne`: normalised entropy = logloss / entropy of the base rate, i.e. the logloss relative to
  always predicting the average rate (below 1 means the model knows something);
- `calibration`: mean predicted probability / observed rate (1 is perfect);
- `rows`, `positives`: raw counts; `base_rate`: the (weighted) observed rate.

Weights are the inverse sampling rates of downsampled negatives, so weighted metrics estimate
what the model does on the original, un-downsampled traffic.

Both are computed with numpy alone, so training, promotion and retraining need no
scikit-learn at runtime; the test suite checks them against scikit-learn's `log_loss` and
`roc_auc_score` (a dev dependency only).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from control.errors import TrainingInputError

# Probabilities are clipped this far from 0 and 1 so that one confident mistake costs a large
# but finite logloss.
EPS = 1e-7


@dataclass(frozen=True)
class Metrics:
    logloss: float
    auc: float
    ne: float
    calibration: float
    rows: int
    positives: int
    base_rate: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def binary_entropy(p: float) -> float:
    """Entropy (nats) of a Bernoulli(p); 0 at p in {0, 1}."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log(p) + (1.0 - p) * math.log(1.0 - p))


def weighted_logloss(
    labels: npt.NDArray[np.float64],
    predictions: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64] | None = None,
) -> float:
    """Mean (weighted) negative log-likelihood of 0/1 `labels` under clipped `predictions`."""
    p = np.clip(predictions, EPS, 1.0 - EPS)
    losses = -(labels * np.log(p) + (1.0 - labels) * np.log1p(-p))
    return float(np.average(losses, weights=weights))


def weighted_auc(
    labels: npt.NDArray[np.float64],
    predictions: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64] | None = None,
) -> float:
    """Area under the ROC curve: the (weighted) share of (positive, negative) pairs the
    predictions rank correctly, a tie counting one half (the trapezoidal ROC area).

    One sort, O(n log n); rows with equal predictions form one group so that ties are exact.
    """
    w = np.ones_like(labels) if weights is None else weights
    order = np.argsort(predictions, kind="mergesort")
    sorted_p = predictions[order]
    pos_w = (w * labels)[order]
    neg_w = (w * (1.0 - labels))[order]
    # Group boundaries: the first index of every run of equal predictions.
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    pos_per_group = np.add.reduceat(pos_w, starts)
    neg_per_group = np.add.reduceat(neg_w, starts)
    neg_below = np.cumsum(neg_per_group) - neg_per_group
    total = pos_per_group.sum() * neg_per_group.sum()
    if total <= 0:
        return math.nan
    correct = pos_per_group @ neg_below + 0.5 * (pos_per_group @ neg_per_group)
    return float(correct / total)


def evaluate(
    labels: npt.ArrayLike,
    predictions: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> Metrics:
    """Metrics of `predictions` (probabilities) against 0/1 `labels`.

    Raises TrainingInputError when the rows cannot be evaluated: none, mismatched lengths,
    labels other than 0/1, or only one label value (AUC and NE are undefined).
    """
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(predictions, dtype=np.float64).ravel(), EPS, 1.0 - EPS)
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if y.size == 0:
        raise TrainingInputError("no rows to evaluate")
    if p.shape != y.shape or (w is not None and w.shape != y.shape):
        raise TrainingInputError(
            f"labels ({y.size}), predictions ({p.size}) and weights differ in length"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise TrainingInputError("labels must be 0 or 1")
    if not np.isfinite(p).all():
        raise TrainingInputError("predictions contain NaN")
    positives = int(y.sum())
    if positives in (0, y.size):
        raise TrainingInputError(
            f"evaluation rows have only one label value ({int(y[0])}); AUC is undefined"
        )
    base_rate = float(np.average(y, weights=w))
    logloss = weighted_logloss(y, p, w)
    entropy = binary_entropy(base_rate)
    return Metrics(
        logloss=logloss,
        auc=weighted_auc(y, p, w),
        ne=logloss / entropy if entropy > 0 else math.inf,
        calibration=float(np.average(p, weights=w)) / base_rate,
        rows=int(y.size),
        positives=positives,
        base_rate=base_rate,
    )
