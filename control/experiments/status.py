"""An experiment's status: its record, the arms measured on the log (when given one) and, for
a canary, the guardrails. What `control experiment status` prints, `watch` acts on and the
monitoring report shows."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow.compute as pc

from bidscore.experiments import Experiment
from control.experiments.arms import Measurement, measure
from control.experiments.errors import fetch_arm_errors
from control.experiments.guardrails import GuardrailResult, evaluate
from control.experiments.srm import SRM_ALPHA
from control.monitor.attribution import AttributionWindows
from control.monitor.flags import Flag
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


def overlapping(
    experiments: Sequence[Experiment], log: PredictionLogData, models: Sequence[str]
) -> list[Experiment]:
    """The experiments of `models` that ran during the log's period: those with rows in the
    log, and those whose [start, stop] overlaps the log's first and last record."""
    scores = log.scores
    logged = {n for n in pc.unique(scores["experiment"]).to_pylist() if n is not None}
    first = pc.min(scores["ts"]).as_py()
    last = pc.max(scores["ts"]).as_py()
    chosen = []
    for e in experiments:
        if e.model not in models:
            continue
        started = _unix(e.started_at)
        stopped = _unix(e.stopped_at) if e.stopped_at else math.inf
        in_period = first is not None and started <= last and stopped >= first
        if e.name in logged or in_period:
            chosen.append(e)
    return chosen


def _unix(at: str) -> float:
    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.inf


def experiment_flags(status: ExperimentStatus) -> list[Flag]:
    """Alarms for the monitoring report: a sample-ratio mismatch, a breached guardrail."""
    e, m = status.experiment, status.measurement
    flags: list[Flag] = []
    if m is not None and m.srm.flagged:
        flags.append(
            Flag(
                check="experiment.srm",
                severity="alarm",
                model=e.model,
                version=e.treatment,
                subject=e.name,
                value=m.srm.p_value,
                threshold=SRM_ALPHA,
                message=f"experiment {e.name}: {m.srm.describe()}",
            )
        )
    for g in status.guardrails:
        if g.breached:
            flags.append(
                Flag(
                    check=f"experiment.{g.name}",
                    severity="alarm",
                    model=e.model,
                    version=e.treatment,
                    subject=e.name,
                    value=math.nan,
                    threshold=math.nan,
                    message=f"experiment {e.name}: canary guardrail: {g.detail}",
                )
            )
    return flags
