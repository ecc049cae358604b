"""A canary's guardrails (`bidscore.experiments.Guardrails`) checked against a measurement.

Each guardrail ends in one of: `ok`, `breach` (the canary must stop), `waiting` (too little
data to judge yet) or `not evaluated` (the input is missing, e.g. no `--metrics-url` for the
error rate: a failure rate is never guessed from the prediction log, which holds answered
requests only).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from bidscore.experiments import Guardrails
from control.experiments.arms import Measurement
from control.experiments.errors import ArmErrors
from control.monitor.psi import score_psi

OK, BREACH, WAITING, NOT_EVALUATED = "ok", "breach", "waiting", "not evaluated"
# Score rows per arm before the PSI of the score distributions is judged (10 bins).
MIN_PSI_ROWS = 200


@dataclass(frozen=True)
class GuardrailResult:
    name: str  # calibration | psi | error-rate
    state: str  # ok | breach | waiting | not evaluated
    detail: str

    @property
    def breached(self) -> bool:
        return self.state == BREACH

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    rails: Guardrails,
    m: Measurement,
    errors: ArmErrors | None,
    errors_missing: str = "no --metrics-url",
) -> list[GuardrailResult]:
    return [calibration(rails, m), psi(rails, m), error_rate(rails, errors, errors_missing)]


def calibration(rails: Guardrails, m: Measurement) -> GuardrailResult:
    t = m.treatment
    band = f"[{rails.calibration_low:g}, {rails.calibration_high:g}]"
    if t.positives < rails.min_outcomes or not math.isfinite(t.calibration.value):
        return GuardrailResult(
            "calibration",
            WAITING,
            f"treatment has {t.positives} positive outcomes, {rails.min_outcomes} needed",
        )
    value = t.calibration.value
    inside = rails.calibration_low <= value <= rails.calibration_high
    where = "inside" if inside else "outside"
    return GuardrailResult(
        "calibration",
        OK if inside else BREACH,
        f"treatment calibration {value:.2f} {where} {band} over {t.positives:,} outcomes",
    )


def psi(rails: Guardrails, m: Measurement) -> GuardrailResult:
    c, t = m.scores.control, m.scores.treatment
    if min(c.size, t.size) < MIN_PSI_ROWS:
        return GuardrailResult(
            "psi",
            WAITING,
            f"{min(c.size, t.size)} scores in the smaller arm, {MIN_PSI_ROWS} needed",
        )
    value = score_psi(c, t)
    breach = value > rails.max_psi
    return GuardrailResult(
        "psi",
        BREACH if breach else OK,
        f"treatment score PSI vs control {value:.3f} ({'above' if breach else 'at most'}"
        f" {rails.max_psi:g}) over {t.size:,} and {c.size:,} scores",
    )


def error_rate(rails: Guardrails, errors: ArmErrors | None, missing: str) -> GuardrailResult:
    if errors is None:
        return GuardrailResult(
            "error-rate", NOT_EVALUATED, f"error-rate guardrail not evaluated ({missing})"
        )
    t, c = errors.rate("treatment"), errors.rate("control")
    if not (math.isfinite(t) and math.isfinite(c)):
        return GuardrailResult("error-rate", WAITING, "no requests counted in an arm yet")
    breach = t - c > rails.max_error_rate_increase
    return GuardrailResult(
        "error-rate",
        BREACH if breach else OK,
        f"treatment error rate {t:.4%} vs control {c:.4%}"
        f" (allowed +{rails.max_error_rate_increase:.2%})",
    )


def breach_reason(results: list[GuardrailResult]) -> str | None:
    """The reason a stop records, e.g. "canary guardrail: treatment calibration 1.62 outside
    [0.8, 1.25] over 412 outcomes"; None if nothing breached."""
    breached = [r for r in results if r.breached]
    if not breached:
        return None
    return "canary guardrail: " + "; ".join(r.detail for r in breached)
