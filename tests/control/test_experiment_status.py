"""What `control experiment status` must conclude on planted data (control.datagen's planted
click model, arms assigned by user_id as the server does):

- a treatment that is truly better (the planted probabilities, against a noisier control) is
  called better, with a logloss interval excluding 0, once enough outcomes exist — and not
  before;
- identical arms are "not yet distinguishable", with a number of outcomes still needed;
- a skewed assignment (treatment records lost) is flagged as a sample-ratio mismatch;
- shadow mode compares both arms on the same impressions.
"""

from __future__ import annotations

from pathlib import Path

from bidscore.experiments import Experiment
from control.experiments.arms import Measurement, measure
from control.monitor.predictions import read_predictions
from features import catalog
from tests.control.experiment_data import Scorer, experiment, settled_after, simulate

# A weaker model, as one trained on less data would be: noisier and shrunk towards the mean.
WEAKER = Scorer(noise=1.0, scale=0.7)


def _measure(
    out: Path, exp: Experiment, control: Scorer, treatment: Scorer, **kw: object
) -> Measurement:
    written = simulate(out, exp, control=control, treatment=treatment, **kw)  # type: ignore[arg-type]
    return measure(
        exp,
        read_predictions([str(written.log)]),
        [str(written.outcomes)],
        catalog.load().target("ctr"),
        as_of=settled_after(written),
    )


def test_a_truly_better_treatment_is_called_better(tmp_path: Path) -> None:
    exp = experiment("ab", share=0.3)
    m = _measure(tmp_path, exp, WEAKER, Scorer(), rows=60_000)
    assert m.verdict.outcome == "better", m.verdict.line
    logloss = m.differences["logloss"]
    assert logloss.high < 0, logloss
    assert m.differences["auc"].low > 0
    assert not m.srm.flagged
    assert m.treatment.impressions > 10_000
    assert m.control.impressions > 25_000
    # The treatment is the truth: calibrated.
    assert m.treatment.calibration.low < 1 < m.treatment.calibration.high


def test_not_before_enough_outcomes_exist(tmp_path: Path) -> None:
    m = _measure(tmp_path, experiment("ab", share=0.3), WEAKER, Scorer(), rows=1_500)
    assert m.verdict.outcome == "not yet distinguishable", m.verdict.line


def test_identical_arms_are_not_yet_distinguishable(tmp_path: Path) -> None:
    m = _measure(tmp_path, experiment("ab", share=0.5), WEAKER, WEAKER, rows=40_000)
    assert m.verdict.outcome == "not yet distinguishable", m.verdict.line
    logloss = m.differences["logloss"]
    assert logloss.low < 0 < logloss.high
    assert "more outcomes needed at the observed effect" in m.verdict.line
    assert m.verdict.more_outcomes is not None
    assert m.verdict.more_outcomes > 0
    assert not m.srm.flagged


def test_a_skewed_assignment_is_flagged(tmp_path: Path) -> None:
    m = _measure(
        tmp_path, experiment("ab", share=0.3), WEAKER, Scorer(), rows=40_000, drop_treatment=0.2
    )
    assert m.srm.flagged, m.srm
    assert m.srm.p_value < 0.001
    assert m.srm.observed_share < 0.27
    assert "SAMPLE RATIO MISMATCH" in m.srm.describe()


def test_shadow_compares_the_same_impressions(tmp_path: Path) -> None:
    m = _measure(tmp_path, experiment("shadow", share=0.5), WEAKER, Scorer(), rows=20_000)
    assert m.paired
    assert m.treatment.impressions == m.control.impressions
    assert m.treatment.positives == m.control.positives
    assert m.verdict.outcome == "better", m.verdict.line
    assert not m.srm.flagged


def test_a_truly_worse_treatment_is_called_worse(tmp_path: Path) -> None:
    m = _measure(tmp_path, experiment("ab", share=0.3), Scorer(), WEAKER, rows=60_000)
    assert m.verdict.outcome == "worse", m.verdict.line
    assert m.differences["logloss"].low > 0


def test_the_report_picks_experiments_that_ran_during_the_log(tmp_path: Path) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from control.experiments.status import overlapping  # noqa: PLC0415

    logged = experiment("ab", share=0.3)
    written = simulate(tmp_path, logged, control=Scorer(), treatment=Scorer(), rows=2_000)
    log = read_predictions([str(written.log)])
    first = min(log.scores["ts"].to_pylist())

    def at(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")

    during = experiment("canary", name="during", started_at=at(first + 60), stopped_at=None)
    before = experiment(
        "ab", name="before", started_at=at(first - 9_000), stopped_at=at(first - 5_000)
    )
    other_model = experiment("ab", name="cvr-one", model="cvr", started_at=at(first + 60))
    # The logged one says nothing about its dates: its rows in the log are enough.
    chosen = overlapping([logged, during, before, other_model], log, ["ctr"])
    assert [e.name for e in chosen] == [logged.name, "during"]
