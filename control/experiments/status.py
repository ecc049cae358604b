"""An experiment's status: its record, the arms measured on the log (when given one) and, for
a canary, the guardrails. What `control experiment status` prints, `watch` acts on and the
monitoring report shows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bidscore.experiments import Experiment
from control.experiments.arms import Measurement, measure
from control.experiments.errors import fetch_arm_errors
from control.experiments.guardrails import GuardrailResult, evaluate
from control.monitor.attribution import AttributionWindows
from control.monitor.predictions import PredictionLogData
from features.spec import Target


@dataclass(frozen=True)
class StatusInputs:
    log: PredictionLogData
    outcomes: Sequence[str]
    target: Target
    windows: AttributionWindows = field(default_factory=AttributionWindows)
    as_of: float | None = None  # None: now
    metrics_url: str | None = None


@dataclass(frozen=True)
class ExperimentStatus:
    experiment: Experiment
    measurement: Measurement | None
    guardrails: list[GuardrailResult]

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = (
            self.measurement.to_dict()
            if self.measurement is not None
            else {"experiment": self.experiment.to_json(), "arms": None}
        )
        body["guardrails"] = [g.to_dict() for g in self.guardrails]
        return body


def experiment_status(experiment: Experiment, inputs: StatusInputs | None) -> ExperimentStatus:
    """Measure the arms on `inputs` (None: the record alone) and check a canary's guardrails."""
    if inputs is None:
        return ExperimentStatus(experiment, None, [])
    m = measure(
        experiment,
        inputs.log,
        inputs.outcomes,
        inputs.target,
        windows=inputs.windows,
        as_of=inputs.as_of if inputs.as_of is not None else time.time(),
    )
    rails: list[GuardrailResult] = []
    if experiment.guardrails is not None:
        errors, missing = None, "no --metrics-url"
        if inputs.metrics_url:
            errors, missing = fetch_arm_errors(inputs.metrics_url, experiment.model)
        rails = evaluate(experiment.guardrails, m, errors, missing)
    return ExperimentStatus(experiment, m, rails)
