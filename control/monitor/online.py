"""Online accuracy: metrics of logged predictions against realised outcomes, per model, version
and time bucket, with the buckets that left the calibration band or lost too much logloss.

Input is `attribution.attribute(...)`'s settled rows; the metrics are `control.metrics.evaluate`,
the same code that scores a version offline, so online and offline numbers are comparable.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from control.metrics import evaluate
from control.monitor.attribution import Attributed
from control.monitor.flags import Flag
from control.monitor.sources import MonitorInputError

RELIABILITY_BINS = 10


@dataclass(frozen=True)
class OnlineThresholds:
    calibration_low: float = 0.8
    calibration_high: float = 1.25
    # A bucket is flagged when its logloss exceeds the version's training logloss by this
    # fraction of it.
    logloss_margin: float = 0.1
    # Too few positives make calibration noise, not signal: such buckets are shown, not flagged.
    min_positives: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.calibration_low < 1 < self.calibration_high:
            raise MonitorInputError(
                f"the calibration band must satisfy 0 < low < 1 < high, got "
                f"{self.calibration_low},{self.calibration_high}"
            )
        if self.logloss_margin < 0 or self.min_positives < 0:
            raise MonitorInputError("logloss margin and minimum positives must not be negative")


@dataclass(frozen=True)
class BucketMetrics:
    """Metrics of one model version over [start, end); NaN where undefined (one label value)."""

    model: str
    version: str
    start: float
    end: float
    count: int
    positives: int
    mean_score: float
    observed: float
    logloss: float
    auc: float
    ne: float
    calibration: float

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["start_utc"] = iso(self.start)
        return data


@dataclass(frozen=True)
class ReliabilityBin:
    mean_score: float
    observed: float
    count: int


@dataclass(frozen=True)
class OnlineReport:
    bucket_seconds: float
    thresholds: OnlineThresholds
    buckets: list[BucketMetrics]
    totals: list[BucketMetrics]  # one per model version over the whole log
    pending: dict[tuple[str, str], int]
    reliability: dict[tuple[str, str], list[ReliabilityBin]] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket_seconds": self.bucket_seconds,
            "thresholds": dataclasses.asdict(self.thresholds),
            "buckets": [b.to_dict() for b in self.buckets],
            "totals": [b.to_dict() for b in self.totals],
            "pending": [
                {"model": m, "version": v, "count": n} for (m, v), n in sorted(self.pending.items())
            ],
            "reliability": [
                {"model": m, "version": v, "bins": [dataclasses.asdict(b) for b in bins]}
                for (m, v), bins in sorted(self.reliability.items())
            ],
            "flags": [f.to_dict() for f in self.flags],
        }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bucket_metrics(
    model: str,
    version: str,
    *,
    start: float,
    end: float,
    labels: npt.NDArray[Any],
    scores: npt.NDArray[Any],
) -> BucketMetrics:
    positives = int(labels.sum())
    count = int(labels.size)
    nan = math.nan
    if 0 < positives < count:
        m = evaluate(labels, scores)
        logloss, auc, ne, calibration = m.logloss, m.auc, m.ne, m.calibration
    else:
        # One label value: AUC and NE are undefined; calibration too when nothing happened.
        logloss = auc = ne = calibration = nan
    return BucketMetrics(
        model=model,
        version=version,
        start=start,
        end=end,
        count=count,
        positives=positives,
        mean_score=float(scores.mean()) if count else nan,
        observed=positives / count if count else nan,
        logloss=logloss,
        auc=auc,
        ne=ne,
        calibration=calibration,
    )


def online_report(
    attributed: Attributed,
    *,
    bucket_seconds: float = 3600.0,
    thresholds: OnlineThresholds | None = None,
    training_logloss: Mapping[tuple[str, str], float] | None = None,
) -> OnlineReport:
    """Per (model, version, time bucket) metrics of the settled predictions, and flags."""
    if bucket_seconds <= 0:
        raise MonitorInputError(f"the time bucket must be longer than 0 s, got {bucket_seconds}")
    limits = thresholds or OnlineThresholds()
    rows = attributed.rows
    ts = rows["ts"].to_numpy()
    scores = rows["score"].to_numpy()
    labels = rows["label"].to_numpy().astype(np.float64)
    models = np.asarray(rows["model"].to_pylist(), dtype=object)
    versions = np.asarray(rows["version"].to_pylist(), dtype=object)
    starts = np.floor(ts / bucket_seconds) * bucket_seconds

    buckets: list[BucketMetrics] = []
    totals: list[BucketMetrics] = []
    reliability: dict[tuple[str, str], list[ReliabilityBin]] = {}
    for model, version in sorted(set(zip(models.tolist(), versions.tolist(), strict=True))):
        mine = (models == model) & (versions == version)
        for start in np.unique(starts[mine]):
            sel = mine & (starts == start)
            end = float(start + bucket_seconds)
            buckets.append(
                bucket_metrics(
                    model,
                    version,
                    start=float(start),
                    end=end,
                    labels=labels[sel],
                    scores=scores[sel],
                )
            )
        first, last = float(starts[mine].min()), float(starts[mine].max() + bucket_seconds)
        totals.append(
            bucket_metrics(
                model, version, start=first, end=last, labels=labels[mine], scores=scores[mine]
            )
        )
        reliability[(model, version)] = reliability_bins(scores[mine], labels[mine])
    flags = [f for b in buckets for f in bucket_flags(b, limits, training_logloss or {})]
    return OnlineReport(
        bucket_seconds=bucket_seconds,
        thresholds=limits,
        buckets=buckets,
        totals=totals,
        pending=dict(attributed.pending),
        reliability=reliability,
        flags=flags,
    )


def bucket_flags(
    b: BucketMetrics, limits: OnlineThresholds, training_logloss: Mapping[tuple[str, str], float]
) -> list[Flag]:
    if b.positives < limits.min_positives:
        return []
    flags: list[Flag] = []
    if math.isfinite(b.calibration) and not (
        limits.calibration_low <= b.calibration <= limits.calibration_high
    ):
        bound = (
            limits.calibration_low
            if b.calibration < limits.calibration_low
            else limits.calibration_high
        )
        flags.append(
            _bucket_flag(
                b,
                "online.calibration",
                b.calibration,
                bound,
                f"calibration {b.calibration:.2f} outside "
                f"[{limits.calibration_low}, {limits.calibration_high}] "
                f"(mean predicted {b.mean_score:.4f}, observed {b.observed:.4f}, n={b.count})",
            )
        )
    trained = training_logloss.get((b.model, b.version))
    if trained is not None and math.isfinite(b.logloss):
        limit = trained * (1 + limits.logloss_margin)
        if b.logloss > limit:
            flags.append(
                _bucket_flag(
                    b,
                    "online.logloss",
                    b.logloss,
                    limit,
                    f"logloss {b.logloss:.4f} exceeds training logloss "
                    f"{trained:.4f} by more than {limits.logloss_margin:.0%}",
                )
            )
    return flags


def _bucket_flag(
    b: BucketMetrics, check: str, value: float, threshold: float, finding: str
) -> Flag:
    """A flag on one time bucket: its subject is the bucket's start, and the message names the
    model, version and bucket before the finding so it reads on its own."""
    return Flag(
        check=check,
        severity="flag",
        model=b.model,
        version=b.version,
        subject=iso(b.start),
        value=value,
        threshold=threshold,
        message=f"{b.model} v{b.version} bucket {iso(b.start)}: {finding}",
    )


def reliability_bins(
    scores: npt.NDArray[Any], labels: npt.NDArray[Any], bins: int = RELIABILITY_BINS
) -> list[ReliabilityBin]:
    """Equal-count bins of the score: mean score against observed rate in each."""
    if scores.size == 0:
        return []
    order = np.argsort(scores, kind="stable")
    return [
        ReliabilityBin(float(scores[part].mean()), float(labels[part].mean()), int(part.size))
        for part in np.array_split(order, min(bins, scores.size))
        if part.size
    ]
