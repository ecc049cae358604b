"""Gathering monitoring inputs from the registry and the logs: what the `control monitor`
commands and the report share."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bidscore.errors import NotFoundError
from bidscore.registry import Registry, Version
from control.monitor.attribution import AttributionWindows, attribute
from control.monitor.drift import DriftReport, DriftThresholds, drift_report, serving_drift
from control.monitor.offline import OfflineReport, OfflineTolerances, offline_report
from control.monitor.online import OnlineReport, OnlineThresholds, online_report
from control.monitor.outcomes import read_outcomes
from control.monitor.predictions import PredictionLogData, served
from control.monitor.sources import MonitorInputError
from features.spec import Target


def registered_models(registry: Registry) -> list[str]:
    return sorted({v.model for v in registry.list_versions()})


def versions_of(registry: Registry, model: str) -> list[Version]:
    versions = registry.list_versions(model)
    if not versions:
        raise NotFoundError(f"model {model!r} has no registered versions")
    return versions


def offline_reports(
    registry: Registry, models: Sequence[str], tolerances: OfflineTolerances | None = None
) -> list[OfflineReport]:
    return [offline_report(m, versions_of(registry, m), tolerances) for m in models]


def drift_reports(
    registry: Registry,
    models: Sequence[str],
    thresholds: DriftThresholds | None = None,
    log: PredictionLogData | None = None,
) -> list[DriftReport]:
    """Version-over-version drift per model; with a log carrying raw features, also serving
    traffic against the training data of the version that scored it (as extra comparisons)."""
    reports = []
    for model in models:
        report = drift_report(model, versions_of(registry, model), thresholds)
        if log is not None:
            report = with_serving(registry, report, log, thresholds)
        reports.append(report)
    return reports


def with_serving(
    registry: Registry,
    report: DriftReport,
    log: PredictionLogData,
    thresholds: DriftThresholds | None,
) -> DriftReport:
    if log.features is None:
        raise MonitorInputError(
            "the prediction log has no raw features: start the server with feature logging on"
        )
    scores = served(log.scores)
    scores = scores.filter(pc.equal(scores["model"], report.model))
    comparisons, flags = list(report.comparisons), list(report.flags)
    for version in sorted(set(scores["version"].to_pylist())):
        mine = scores.filter(pc.equal(scores["version"], version))
        traffic = _rows_of_requests(log.features, mine)
        comparison, found = serving_drift(
            registry.get_version(report.model, version), traffic, thresholds
        )
        comparisons.append(comparison)
        flags.extend(found)
    return dataclasses.replace(report, comparisons=comparisons, flags=flags)


def _rows_of_requests(features: pa.Table, scores: pa.Table) -> pa.Table:
    """The feature rows (one per candidate) of the candidates in `scores`."""
    keys = (
        scores.select(["request_id", "candidate_id"])
        .group_by(["request_id", "candidate_id"])
        .aggregate([])
    )
    return features.join(keys, keys=["request_id", "candidate_id"], join_type="inner")


@dataclass(frozen=True)
class OnlineSettings:
    bucket_seconds: float = 3600.0
    windows: AttributionWindows = dataclasses.field(default_factory=AttributionWindows)
    thresholds: OnlineThresholds = dataclasses.field(default_factory=OnlineThresholds)


def online_from_log(
    log: PredictionLogData,
    outcome_locations: Sequence[str],
    targets: Mapping[str, Target],
    as_of: float,
    *,
    settings: OnlineSettings | None = None,
    registry: Registry | None = None,
) -> OnlineReport:
    """Join the log with the outcomes and compute per-bucket metrics and flags.

    Shadow rows (an experiment's treatment scoring off the response path) are left out: this
    report is the accuracy of what the bidders were answered with, per served version, and
    its flags are about served models. A shadowed version is judged against control on the
    same requests by `control experiment status`.
    """
    s = settings or OnlineSettings()
    scores = served(log.scores)
    labels = sorted(
        {t.label for t in targets.values()} | {t.where for t in targets.values() if t.where}
    )
    outcomes = read_outcomes(outcome_locations, labels)
    attributed = attribute(scores, outcomes, targets, s.windows, as_of)
    trained = training_logloss(registry, scores) if registry is not None else {}
    return online_report(
        attributed,
        bucket_seconds=s.bucket_seconds,
        thresholds=s.thresholds,
        training_logloss=trained,
    )


def training_logloss(registry: Registry, scores: pa.Table) -> dict[tuple[str, str], float]:
    """The registered logloss of every (model, version) in the log that the registry knows."""
    pairs = scores.select(["model", "version"]).group_by(["model", "version"]).aggregate([])
    out: dict[tuple[str, str], float] = {}
    for model, version in zip(
        pairs["model"].to_pylist(), pairs["version"].to_pylist(), strict=True
    ):
        try:
            metrics = registry.get_version(model, version).manifest.metrics
        except NotFoundError:
            continue  # a version from another registry: no training baseline, no logloss flag
        value = metrics.get("logloss")
        if isinstance(value, int | float) and np.isfinite(value):
            out[(model, version)] = float(value)
    return out
