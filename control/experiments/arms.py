"""An experiment's arms measured on the prediction log joined with realised outcomes.

Rows of the experiment are the prediction-log rows whose `experiment` column names it
(`control.monitor.predictions`). Outcomes are joined with the same attribution window as
`control monitor online` (`control.monitor.attribution`): a prediction counts once its outcome
is settled; the others are pending and left out.

- `ab` and `canary`: each arm is its own requests (arm = the request's assignment);
- `shadow`: the treatment's rows are the shadow scores and control's are the bidder-visible
  scores of the same shadowed requests, so the two arms are compared on the *same*
  impressions (paired differences: more power, and no assignment noise).

Assignment counts for the sample-ratio test are distinct requests per arm; a request without
the key is assigned to control by the server and counted there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bidscore.experiments import Experiment
from control.experiments import stats
from control.experiments.srm import SrmResult, srm_test
from control.experiments.stats import Estimate
from control.experiments.verdict import Verdict, decide
from control.monitor.attribution import AttributionWindows, attribute
from control.monitor.outcomes import read_outcomes
from control.monitor.predictions import PredictionLogData
from features.spec import Target

FloatArray = stats.FloatArray


@dataclass(frozen=True)
class ArmMetrics:
    arm: str
    version: str
    requests: int  # distinct requests in the log (settled or not)
    impressions: int  # settled predictions (outcome known)
    pending: int  # predictions whose attribution window is still open
    positives: int
    rate: Estimate  # observed CTR / CVR, Wilson
    mean_prediction: Estimate
    calibration: Estimate  # mean prediction / observed rate, delta method
    logloss: Estimate  # per impression, normal
    auc: Estimate  # percentile bootstrap

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "arm": self.arm,
            "version": self.version,
            "requests": self.requests,
            "impressions": self.impressions,
            "pending": self.pending,
            "positives": self.positives,
        }
        for name in ("rate", "mean_prediction", "calibration", "logloss", "auc"):
            body[name] = getattr(self, name).to_dict()
        return body


@dataclass(frozen=True)
class ArmScores:
    """What the guardrails need beyond the metrics: every logged score per arm."""

    control: FloatArray
    treatment: FloatArray


@dataclass(frozen=True)
class Measurement:
    experiment: Experiment
    label: str  # click / conversion: what the rate counts
    control: ArmMetrics
    treatment: ArmMetrics
    differences: dict[str, Estimate]  # treatment - control
    paired: bool  # shadow: both arms on the same impressions
    srm: SrmResult
    verdict: Verdict
    scores: ArmScores = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment.to_json(),
            "label": self.label,
            "arms": {"control": self.control.to_dict(), "treatment": self.treatment.to_dict()},
            "differences": {k: v.to_dict() for k, v in self.differences.items()},
            "paired": self.paired,
            "methods": METHODS,
            "srm": self.srm.to_dict(),
            "verdict": self.verdict.to_dict(),
        }


METHODS = {
    "rate": "Wilson score interval; difference: Newcombe hybrid score",
    "mean_prediction": "normal interval of the mean",
    "calibration": "delta method (ratio of means over the same rows)",
    "logloss": "normal interval of the mean per-impression loss (paired in shadow mode)",
    "auc": (
        f"percentile bootstrap, {stats.BOOTSTRAP_RESAMPLES} seeded resamples of at most"
        f" {stats.BOOTSTRAP_MAX_ROWS:,} rows"
    ),
    "level": f"{stats.LEVEL:.0%}",
}


def experiment_rows(scores: pa.Table, experiment: Experiment) -> pa.Table:
    """The score rows of `experiment`'s model logged under it."""
    mine = pc.and_(
        pc.equal(scores["model"], experiment.model),
        pc.equal(scores["experiment"], experiment.name),
    )
    return scores.filter(pc.fill_null(mine, False))


def measure(
    experiment: Experiment,
    log: PredictionLogData,
    outcome_locations: Sequence[str],
    target: Target,
    *,
    windows: AttributionWindows | None = None,
    as_of: float,
) -> Measurement:
    rows = experiment_rows(log.scores, experiment)
    labels = sorted({target.label, *([target.where] if target.where else [])})
    outcomes = read_outcomes(outcome_locations, labels)
    attributed = attribute(
        rows, outcomes, {experiment.model: target}, windows or AttributionWindows(), as_of
    )
    return measure_rows(experiment, rows, attributed.rows, target.label)


def measure_rows(
    experiment: Experiment, rows: pa.Table, settled: pa.Table, label: str
) -> Measurement:
    """The measurement from the experiment's logged rows and their settled subset."""
    paired = experiment.mode == "shadow"
    shadow = np.asarray(rows["shadow"].to_numpy(zero_copy_only=False), dtype=bool)
    arm = rows["arm"]
    request = rows["request_id"]
    if paired:
        shadowed = pc.unique(request.filter(pa.array(shadow)))
        in_shadowed = np.asarray(pc.is_in(request, value_set=shadowed).to_numpy(), dtype=bool)
        t_mask = shadow
        c_mask = ~shadow & in_shadowed
        everyone = pc.count_distinct(request).as_py()
        counts = (everyone - len(shadowed), len(shadowed))
    else:
        t_mask = ~shadow & _is(arm, "treatment")
        c_mask = ~shadow & _is(arm, "control")
        counts = (_distinct(request, c_mask), _distinct(request, t_mask))
    t_rows, c_rows = rows.filter(pa.array(t_mask)), rows.filter(pa.array(c_mask))
    t_settled, c_settled = (
        _arm_settled(settled, "treatment", paired),
        _arm_settled(settled, "control", paired),
    )
    if paired:
        t_settled, c_settled = _align(t_settled, c_settled)
    t_y, t_p = _arrays(t_settled)
    c_y, c_p = _arrays(c_settled)
    # Shadow: control's side of the comparison is the shadowed requests, not the others.
    c_requests = counts[1] if paired else counts[0]
    control = _arm_metrics("control", experiment.control, c_rows, c_y, c_p, c_requests)
    treatment = _arm_metrics("treatment", experiment.treatment, t_rows, t_y, t_p, counts[1])
    differences = _differences(treatment, control, (t_y, t_p), (c_y, c_p), paired)
    verdict = decide(
        differences["logloss"],
        (treatment.impressions, control.impressions),
        (treatment.positives, control.positives),
    )
    return Measurement(
        experiment=experiment,
        label=label,
        control=control,
        treatment=treatment,
        differences=differences,
        paired=paired,
        srm=srm_test(counts[0], counts[1], experiment.share),
        verdict=verdict,
        scores=ArmScores(_scores(c_rows), _scores(t_rows)),
    )


def _is(column: pa.ChunkedArray, value: str) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.equal(column, value), False).to_numpy(), dtype=bool)


def _distinct(column: pa.ChunkedArray, mask: np.ndarray) -> int:
    return int(pc.count_distinct(column.filter(pa.array(mask))).as_py())


def _arm_settled(settled: pa.Table, arm: str, paired: bool) -> pa.Table:
    if paired:
        want_shadow = arm == "treatment"
        return settled.filter(pc.equal(settled["shadow"], want_shadow))
    mine = pc.and_(pc.invert(settled["shadow"]), pc.equal(settled["arm"], arm))
    return settled.filter(pc.fill_null(mine, False))


def _align(treatment: pa.Table, control: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Both arms on the impressions they share, in the same order."""
    key = ["request_id", "candidate_id"]
    t = treatment.select([*key, "score", "label"])
    c = control.select([*key, "score", "label"]).rename_columns([*key, "c_score", "c_label"])
    joined = t.join(c, keys=key, join_type="inner").sort_by([(k, "ascending") for k in key])
    both = pa.table({"score": joined["score"], "label": joined["label"]})
    other = pa.table({"score": joined["c_score"], "label": joined["c_label"]})
    return both, other


def _arrays(settled: pa.Table) -> tuple[FloatArray, FloatArray]:
    labels = np.asarray(settled["label"].to_numpy(), dtype=np.float64)
    scores = np.asarray(settled["score"].to_numpy(), dtype=np.float64)
    return labels, scores


def _scores(rows: pa.Table) -> FloatArray:
    return np.asarray(rows["score"].to_numpy(), dtype=np.float64)


def _arm_metrics(  # noqa: PLR0917 -- one arm's pieces
    arm: str, version: str, rows: pa.Table, y: FloatArray, p: FloatArray, requests: int
) -> ArmMetrics:
    positives = int(y.sum())
    return ArmMetrics(
        arm=arm,
        version=version,
        requests=requests,
        impressions=int(y.size),
        pending=max(rows.num_rows - int(y.size), 0),
        positives=positives,
        rate=stats.wilson(positives, int(y.size)),
        mean_prediction=stats.mean_interval(p),
        calibration=stats.ratio_of_means(p, y),
        logloss=stats.mean_interval(stats.row_logloss(y, p)),
        auc=stats.auc_interval(y, p),
    )


def _differences(
    t: ArmMetrics,
    c: ArmMetrics,
    t_data: tuple[FloatArray, FloatArray],
    c_data: tuple[FloatArray, FloatArray],
    paired: bool,
) -> dict[str, Estimate]:
    (t_y, t_p), (c_y, c_p) = t_data, c_data
    t_loss, c_loss = stats.row_logloss(t_y, t_p), stats.row_logloss(c_y, c_p)
    if paired:
        # The same impressions: the observed rate is identical by construction.
        return {
            "rate": Estimate(0.0, 0.0, 0.0) if t_y.size else stats.NAN,
            "mean_prediction": stats.paired_difference(t_p, c_p),
            "calibration": stats.ratio_difference(t.calibration, c.calibration),
            "logloss": stats.paired_difference(t_loss, c_loss),
            "auc": stats.paired_auc_difference(t_y, t_p, c_p),
        }
    return {
        "rate": stats.rate_difference(t.positives, t.impressions, c.positives, c.impressions),
        "mean_prediction": stats.mean_difference(t_p, c_p),
        "calibration": stats.ratio_difference(t.calibration, c.calibration),
        "logloss": stats.mean_difference(t_loss, c_loss),
        "auc": stats.auc_difference((t_y, t_p), (c_y, c_p)),
    }
