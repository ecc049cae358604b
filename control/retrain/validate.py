"""Data checks a retraining run makes before it trains anything.

Each check yields `Check`s with status `pass`, `warn` or `fail`; any `fail` stops the run
before training. Hard failures are the ones that make a new model worse than no new model:
a day whose row count fell by more than `max_row_drop` against the trailing average (a broken
log pipeline), a feature that is suddenly all-missing, a training window without both label
values. Label-rate swings and drift against the production model's data profile (PSI) are
warnings by default: a shifted market is a reason to retrain, not to stop; `fail_on_drift`
makes a PSI alarm hard too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from bidscore.errors import BidscoreError

Status = Literal["pass", "warn", "fail"]

# Columns of the raw logs that are identifiers or labels, not features to watch.
NON_FEATURES = frozenset(
    {"request_id", "candidate_id", "click", "conversion", "weight", "dt", "ts"}
)

ALL_MISSING = 0.999  # "all missing" tolerates a stray value or two in a day of logs


class ValidationStoppedError(BidscoreError):
    """A hard data check failed; the run stops before training."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(f"validation failed: {report.summary()}")
        self.report = report


@dataclass(frozen=True)
class ValidationPolicy:
    """Thresholds of the checks (every one is a `control retrain` option)."""

    max_row_drop: float = 0.3  # a day below 70% of the trailing average fails
    trailing_days: int = 7
    max_label_rate_change: float = 0.5  # relative to the trailing mean; a warning
    missing_rate_increase: float = 0.2  # absolute increase over the baseline; a warning
    psi_warn: float = 0.1
    psi_alarm: float = 0.25
    fail_on_drift: bool = False


@dataclass(frozen=True)
class Check:
    """One check's outcome on one subject (a day, a feature, the window)."""

    name: str
    subject: str
    status: Status
    value: float | None
    threshold: float | None
    message: str


@dataclass(frozen=True)
class DayStats:
    """What validation needs from one day of logs."""

    day: date
    rows: int  # every logged row: the health of the log pipeline
    positives: int
    missing: dict[str, float] = field(default_factory=dict)
    target_rows: int | None = None  # rows the model learns from (cvr: clicks); None = all

    @property
    def label_rows(self) -> int:
        """The denominator of the label rate."""
        return self.rows if self.target_rows is None else self.target_rows


@dataclass
class ValidationReport:
    """Every check's outcome; `failures` non-empty means the run stops."""

    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        """The hard failures."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        """Checks worth a look that do not stop the run."""
        return [c for c in self.checks if c.status == "warn"]

    def summary(self) -> str:
        """One line naming the failed checks, for errors and the run record."""
        if not self.failures:
            return f"all checks passed ({len(self.warnings)} warnings)"
        return "; ".join(f"{c.name} {c.subject}: {c.message}" for c in self.failures)

    def to_json(self) -> dict[str, Any]:
        """For the run record."""
        return {
            "passed": not self.failures,
            "failed": [f"{c.name}:{c.subject}" for c in self.failures],
            "checks": [asdict(c) for c in self.checks if c.status != "pass"],
            "checks_passed": sum(c.status == "pass" for c in self.checks),
        }


def _missing_count(column: pa.ChunkedArray) -> int:
    """Nulls, and for strings also empty strings (the logs' spelling of 'not sent')."""
    missing = int(column.null_count)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        missing += int(pc.sum(pc.equal(column, "")).as_py() or 0)
    return missing


def day_counts(table: pa.Table, label: str, target: pa.Table | None = None) -> dict[str, Any]:
    """What `day_stats` needs from (part of) a day's logs, as counts that add up over the
    files of a day: `rows`, `positives` of `label` among the `target` rows (default: all),
    `target_rows` (None without `target`) and `missing` (missing cells per feature column).
    Preparation tasks return these per file; `merge_day_counts` adds them up."""
    learnt = table if target is None else target
    positives = (
        int(pc.sum(learnt.column(label)).as_py() or 0) if label in learnt.schema.names else 0
    )
    return {
        "rows": table.num_rows,
        "positives": positives,
        "target_rows": None if target is None else target.num_rows,
        "missing": {
            name: _missing_count(table.column(name))
            for name in table.schema.names
            if name not in NON_FEATURES
        },
    }


def merge_day_counts(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The `day_counts` of a day from those of its files (every count adds up exactly)."""
    missing: dict[str, int] = {}
    for part in parts:
        for name, n in part["missing"].items():
            missing[name] = missing.get(name, 0) + int(n)
    targets = [p["target_rows"] for p in parts]
    return {
        "rows": sum(int(p["rows"]) for p in parts),
        "positives": sum(int(p["positives"]) for p in parts),
        "target_rows": None if any(t is None for t in targets) else sum(targets),
        "missing": missing,
    }


def stats_from_counts(day: date, counts: Mapping[str, Any]) -> DayStats:
    """A day's `DayStats` from its `day_counts` (merged over its files)."""
    rows = int(counts["rows"])
    return DayStats(
        day=day,
        rows=rows,
        positives=int(counts["positives"]),
        missing={name: (float(n) / rows if rows else 0.0) for name, n in counts["missing"].items()},
        target_rows=counts["target_rows"],
    )


def day_stats(day: date, table: pa.Table, label: str, target: pa.Table | None = None) -> DayStats:
    """Row count and missing rate of every feature column of a day's logs, and the positives
    of `label` among the `target` rows (default: all rows)."""
    return stats_from_counts(day, day_counts(table, label, target))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def check_row_counts(
    days: Sequence[DayStats], earlier_rows: Sequence[int], policy: ValidationPolicy
) -> list[Check]:
    """Each day's rows against the mean of the `trailing_days` days before it."""
    history = list(earlier_rows)
    checks = []
    for stats in days:
        trailing = _mean([float(r) for r in history[-policy.trailing_days :]])
        history.append(stats.rows)
        subject = stats.day.isoformat()
        if trailing is None or trailing == 0:
            continue
        ratio = stats.rows / trailing
        floor = 1.0 - policy.max_row_drop
        status: Status = "fail" if ratio < floor else "pass"
        checks.append(
            Check(
                "row_count",
                subject,
                status,
                round(ratio, 4),
                floor,
                f"{stats.rows} rows = {ratio:.0%} of the trailing average {trailing:.0f} "
                f"(floor {floor:.0%})",
            )
        )
    return checks


def check_label_rate(days: Sequence[DayStats], label: str, policy: ValidationPolicy) -> list[Check]:
    """Both label values present; no day's rate far from the mean of the others."""
    rows = sum(d.label_rows for d in days)
    positives = sum(d.positives for d in days)
    checks = []
    if positives in (0, rows):
        checks.append(
            Check(
                "label_rate",
                "window",
                "fail",
                positives / rows if rows else None,
                None,
                f"{positives} of {rows} rows have {label}=1: a model needs both label values",
            )
        )
        return checks
    for stats in days:
        others = [d for d in days if d is not stats]
        base = sum(d.positives for d in others) / max(sum(d.label_rows for d in others), 1)
        rate = stats.positives / stats.label_rows if stats.label_rows else 0.0
        change = abs(rate - base) / base if base else 0.0
        status: Status = "warn" if change > policy.max_label_rate_change else "pass"
        checks.append(
            Check(
                "label_rate",
                stats.day.isoformat(),
                status,
                round(rate, 5),
                policy.max_label_rate_change,
                f"{label} rate {rate:.4f} vs {base:.4f} on the other days ({change:+.0%})",
            )
        )
    return checks


def check_missing(
    days: Sequence[DayStats],
    baseline: Mapping[str, float],
    policy: ValidationPolicy,
) -> list[Check]:
    """A feature all-missing on a day where it is normally present fails; a jump warns.

    `baseline` is the production model's missing rate per feature when it has a profile;
    features it does not cover use the mean over the other days of this selection.
    """
    checks = []
    features = sorted({name for d in days for name in d.missing})
    for name in features:
        for stats in days:
            rate = stats.missing.get(name)
            if rate is None:
                continue
            others = [d.missing[name] for d in days if d is not stats and name in d.missing]
            base = baseline.get(name, _mean(others))
            if base is None:
                continue
            subject = f"{name}@{stats.day.isoformat()}"
            if rate >= ALL_MISSING and base < 0.5:
                checks.append(
                    Check(
                        "missing",
                        subject,
                        "fail",
                        round(rate, 4),
                        ALL_MISSING,
                        f"{name} is missing in {rate:.1%} of rows (normally {base:.1%})",
                    )
                )
            elif rate - base > policy.missing_rate_increase:
                checks.append(
                    Check(
                        "missing",
                        subject,
                        "warn",
                        round(rate, 4),
                        base + policy.missing_rate_increase,
                        f"{name} missing rate {rate:.1%} (normally {base:.1%})",
                    )
                )
    if not checks:
        checks.append(Check("missing", "all features", "pass", None, None, "no missing spikes"))
    return checks


def check_drift(psi: Mapping[str, float], policy: ValidationPolicy) -> list[Check]:
    """PSI per feature of the fresh data against the production model's training data."""
    checks = []
    for name, value in sorted(psi.items()):
        status: Status = "pass"
        if value > policy.psi_alarm:
            status = "fail" if policy.fail_on_drift else "warn"
        elif value > policy.psi_warn:
            status = "warn"
        checks.append(
            Check(
                "psi",
                name,
                status,
                round(value, 4),
                policy.psi_alarm if status != "pass" else policy.psi_warn,
                f"PSI {value:.3f} against the production model's training data",
            )
        )
    return checks


def validate(
    days: Sequence[DayStats],
    earlier_rows: Sequence[int],
    label: str,
    policy: ValidationPolicy,
    *,
    baseline_missing: Mapping[str, float] | None = None,
    psi: Callable[[], Mapping[str, float]] | None = None,
) -> ValidationReport:
    """Run every check; `psi` is called only when the cheaper checks did not already fail."""
    checks = check_row_counts(days, earlier_rows, policy)
    checks += check_label_rate(days, label, policy)
    checks += check_missing(days, baseline_missing or {}, policy)
    if psi is not None:
        checks += check_drift(psi(), policy)
    return ValidationReport(checks)
