"""The verdict of an experiment: is the treatment better, worse, or not yet distinguishable?

The deciding metric is the **realised-outcome log loss per impression**, treatment - control:
the model whose predicted probabilities explain the clicks (or conversions) that happened is
the better bidder, since a DSP's bid is the predicted probability times the value. Log loss
rewards ranking and calibration together; AUC alone ignores calibration (which sets the bid
price), and the observed rate in the arms says nothing about the model as long as the bid
does not change who clicks. Lower is better, so a difference whose 95 % interval lies below
0 means the treatment is better.

When the interval still contains 0, a power calculation says how many more settled
impressions (outcomes) would make the *observed* difference significant at alpha 0.05 with
80 % power: the standard error shrinks as 1 / sqrt(n), so the total needed is
n · ((z_{1-alpha/2} + z_{power}) · SE / |d|)².
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from control.experiments.stats import Estimate, z_of

ALPHA = 0.05
POWER = 0.80
# Fewer positives than this in an arm: no verdict yet, whatever the interval says.
MIN_POSITIVES = 30
DECIDING_METRIC = "logloss per impression (treatment - control; lower is better)"


@dataclass(frozen=True)
class Verdict:
    outcome: str  # "better" | "worse" | "not yet distinguishable"
    line: str
    metric: str
    more_outcomes: int | None  # settled impressions still needed, when undecided

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "line": self.line,
            "metric": self.metric,
            "more_outcomes": self.more_outcomes,
        }


def outcomes_needed(
    difference: Estimate, n: int, alpha: float = ALPHA, power: float = POWER
) -> int | None:
    """Total settled impressions (both arms, in today's proportions) at which `difference`'s
    point estimate would be significant with `power`; None when it cannot be said (no
    difference observed, or no interval)."""
    d = abs(difference.value)
    if not (math.isfinite(d) and math.isfinite(difference.low) and math.isfinite(difference.high)):
        return None
    if d == 0.0 or n <= 0:
        return None
    se = (difference.high - difference.low) / (2 * z_of(1 - alpha))
    z = z_of(1 - alpha) + NormalDist().inv_cdf(power)
    return math.ceil(n * (z * se / d) ** 2)


def decide(
    logloss_difference: Estimate,
    impressions: tuple[int, int],
    positives: tuple[int, int],
) -> Verdict:
    """The verdict from the logloss difference and the arms' (treatment, control) counts."""
    n = sum(impressions)
    low_positives = min(positives)
    d = logloss_difference
    if low_positives < MIN_POSITIVES:
        return Verdict(
            "not yet distinguishable",
            f"not yet distinguishable — too few outcomes: {low_positives} positives in the"
            f" smaller arm, at least {MIN_POSITIVES} per arm before a verdict",
            DECIDING_METRIC,
            None,
        )
    interval = f"logloss difference {d.value:+.5f} [{d.low:+.5f}, {d.high:+.5f}] per impression"
    if d.high < 0:
        return Verdict("better", f"treatment better: {interval}", DECIDING_METRIC, None)
    if d.low > 0:
        return Verdict("worse", f"treatment worse: {interval}", DECIDING_METRIC, None)
    needed = outcomes_needed(d, n)
    if needed is None:
        more = "no difference observed yet"
        count = None
    else:
        count = max(needed - n, 0)
        more = (
            f"about {count:,} more outcomes needed at the observed effect"
            f" ({POWER:.0%} power, alpha {ALPHA:g})"
        )
    return Verdict(
        "not yet distinguishable",
        f"not yet distinguishable — {more}; {interval}",
        DECIDING_METRIC,
        count,
    )
