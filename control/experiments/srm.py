"""Sample-ratio mismatch: are the arms' assignment counts what the configured share implies?

Pearson's chi-square goodness-of-fit test of (control, treatment) counts against
(1 - share, share) of their total, one degree of freedom. A p-value below `SRM_ALPHA` is
flagged: the split is broken (a bug in assignment, a key missing on part of the traffic, a
server on an old version), and no other number of the experiment should be trusted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

SRM_ALPHA = 0.001


@dataclass(frozen=True)
class SrmResult:
    control: int
    treatment: int
    share: float  # the configured treatment share
    observed_share: float
    chi2: float
    p_value: float
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in body.items()
        }

    def describe(self) -> str:
        if self.control + self.treatment == 0:
            return "no assignments in the log yet"
        verdict = "SAMPLE RATIO MISMATCH" if self.flagged else "ok"
        return (
            f"{verdict}: treatment {self.observed_share:.4f} of {self.control + self.treatment:,}"
            f" requests, configured {self.share:g} (chi-square {self.chi2:.2f},"
            f" p = {self.p_value:.3g}; flagged below {SRM_ALPHA:g})"
        )


def chi2_sf_1df(statistic: float) -> float:
    """P(X > statistic) for a chi-square variable with one degree of freedom: X = Z², so the
    survival function is erfc(sqrt(statistic / 2))."""
    if statistic <= 0:
        return 1.0
    return math.erfc(math.sqrt(statistic / 2.0))


def srm_test(control: int, treatment: int, share: float) -> SrmResult:
    """Chi-square test of the counts against the configured treatment share."""
    total = control + treatment
    if total == 0 or not 0.0 < share < 1.0:
        # Shadow at share 1 (every request shadowed) has nothing to mismatch.
        observed = treatment / total if total else math.nan
        return SrmResult(control, treatment, share, observed, math.nan, math.nan, False)
    expected_t, expected_c = total * share, total * (1 - share)
    chi2 = (treatment - expected_t) ** 2 / expected_t + (control - expected_c) ** 2 / expected_c
    p = chi2_sf_1df(chi2)
    return SrmResult(control, treatment, share, treatment / total, chi2, p, p < SRM_ALPHA)
