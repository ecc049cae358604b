"""Offline metrics of a CTR/CVR model on held-out rows.

- `logloss`: mean negative log-likelihood (weighted when rows carry weights);
- `auc`: area under the ROC curve;
- `ne`: normalised entropy = logloss / entropy of the base rate, i.e. the logloss relative to
  always predicting the average rate (below 1 means the model knows something);
- `calibration`: mean predicted probability / observed rate (1 is perfect);
- `rows`, `positives`: raw counts; `base_rate`: the (weighted) observed rate.

Weights are the inverse sampling rates of downsampled negatives, so weighted metrics estimate
what the model does on the original, un-downsampled traffic.
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
    # scikit-learn takes seconds to import; only evaluation needs it, not every CLI start.
    from sklearn.metrics import log_loss, roc_auc_score  # noqa: PLC0415

    positives = int(y.sum())
    if positives in (0, y.size):
        raise TrainingInputError(
            f"evaluation rows have only one label value ({int(y[0])}); AUC is undefined"
        )
    base_rate = float(np.average(y, weights=w))
    logloss = float(log_loss(y, p, sample_weight=w, labels=[0.0, 1.0]))
    entropy = binary_entropy(base_rate)
    return Metrics(
        logloss=logloss,
        auc=float(roc_auc_score(y, p, sample_weight=w)),
        ne=logloss / entropy if entropy > 0 else math.inf,
        calibration=float(np.average(p, weights=w)) / base_rate,
        rows=int(y.size),
        positives=positives,
        base_rate=base_rate,
    )
