"""Offline accuracy across the versions of a model, and the versions that got worse.

Every registered version carries the metrics of its validation data in its manifest
(`metrics: {logloss, auc, ne, calibration, rows, positives}`). Each version is compared with the
one registered before it: a drop in AUC, a rise in logloss or a fall in the row count of more
than a tolerance (relative, as a fraction of the previous value) is flagged.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bidscore.registry import Version
from control.monitor.flags import Flag


@dataclass(frozen=True)
class OfflineTolerances:
    """Relative changes against the previous version that raise a flag."""

    auc_drop: float = 0.01
    logloss_rise: float = 0.05
    rows_drop: float = 0.2


@dataclass(frozen=True)
class VersionMetrics:
    model: str
    version: str
    created_at: str
    logloss: float
    auc: float
    ne: float
    calibration: float
    rows: int  # training + validation rows
    valid_rows: int  # the rows the metrics were computed on
    positives: int  # positives among them

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class OfflineReport:
    model: str
    versions: list[VersionMetrics]
    flags: list[Flag]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "versions": [v.to_dict() for v in self.versions],
            "flags": [f.to_dict() for f in self.flags],
        }


def version_key(version: str) -> tuple[int, str]:
    """Versions are "1", "2", ...: numeric order, not string order ("10" after "9"); anything
    else (a flag's non-numeric version) sorts after them, by name."""
    return (int(version), "") if version.isdigit() else (2**62, version)


def version_order(version: Version) -> tuple[int, str]:
    """`version_key` of a registered version."""
    return version_key(version.version)


def metrics_of(version: Version) -> VersionMetrics:
    """The manifest's validation metrics; `rows` counts all the data the version was trained
    and validated on (`data.rows`), the evidence that a source shrank."""
    metrics = version.manifest.metrics
    data = version.manifest.data

    def number(name: str) -> float:
        value = metrics.get(name)
        return float(value) if isinstance(value, int | float) else math.nan

    return VersionMetrics(
        model=version.model,
        version=version.version,
        created_at=version.created_at,
        logloss=number("logloss"),
        auc=number("auc"),
        ne=number("ne"),
        calibration=number("calibration"),
        rows=int(data.get("rows") or metrics.get("rows") or 0),
        valid_rows=int(metrics.get("rows") or 0),
        positives=int(metrics.get("positives") or 0),
    )


def offline_report(
    model: str, versions: Sequence[Version], tolerances: OfflineTolerances | None = None
) -> OfflineReport:
    """Metrics of `model`'s versions in registration order, with the regressions flagged."""
    tol = tolerances or OfflineTolerances()
    rows = [metrics_of(v) for v in sorted(versions, key=version_order) if v.model == model]
    flags: list[Flag] = []
    for previous, current in itertools.pairwise(rows):
        flags.extend(compare(previous, current, tol))
    return OfflineReport(model=model, versions=rows, flags=flags)


def compare(
    previous: VersionMetrics, current: VersionMetrics, tol: OfflineTolerances
) -> list[Flag]:
    """Flags for `current` against `previous`."""
    checks = (
        ("offline.auc", "AUC fell", previous.auc, current.auc, -1.0, tol.auc_drop),
        (
            "offline.logloss",
            "logloss rose",
            previous.logloss,
            current.logloss,
            1.0,
            tol.logloss_rise,
        ),
        ("offline.rows", "training rows fell", previous.rows, current.rows, -1.0, tol.rows_drop),
    )
    flags: list[Flag] = []
    for check, what, before, after, worse, tolerance in checks:
        change = _relative((after - before) * worse, before)
        if change > tolerance:
            flags.append(
                Flag(
                    check=check,
                    severity="flag",
                    model=current.model,
                    version=current.version,
                    subject=check.removeprefix("offline."),
                    value=change,
                    threshold=tolerance,
                    message=f"{current.model} v{current.version}: {what} {change:.1%} "
                    f"({_fmt(before)} -> {_fmt(after)}) against v{previous.version} "
                    f"(tolerance {tolerance:.1%})",
                )
            )
    return flags


def _fmt(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _relative(change: float, base: float) -> float:
    """`change / base`; 0 when either is unknown (NaN) or the base is 0."""
    if not base or math.isnan(change) or math.isnan(base):
        return 0.0
    return change / abs(base)
