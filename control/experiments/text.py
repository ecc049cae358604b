"""Plain-text renderings of an experiment's numbers, shared by the CLI tables and the HTML
report."""

from __future__ import annotations

import math

from control.experiments.stats import Estimate
from control.experiments.status import ExperimentStatus

# (row label, the ArmMetrics attribute, digits, the difference's key or None)
ARM_ROWS: tuple[tuple[str, str, int, str | None], ...] = (
    ("requests", "requests", 0, None),
    ("impressions settled", "impressions", 0, None),
    ("pending", "pending", 0, None),
    ("positives", "positives", 0, None),
    ("{rate}", "rate", 4, "rate"),
    ("mean prediction", "mean_prediction", 4, "mean_prediction"),
    ("calibration", "calibration", 3, "calibration"),
    ("logloss", "logloss", 5, "logloss"),
    ("AUC", "auc", 4, "auc"),
)


def rate_name(label: str) -> str:
    return "CTR" if label == "click" else "CVR" if label == "conversion" else f"{label} rate"


def interval(e: Estimate, digits: int = 4, signed: bool = False) -> str:
    """`0.0296 [0.0267, 0.0328]` (signed: `+0.0005 [-0.0030, +0.0043]`)."""
    if not math.isfinite(e.value):
        return "-"
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    if not (math.isfinite(e.low) and math.isfinite(e.high)):
        return f.format(e.value)
    return f"{f.format(e.value)} [{f.format(e.low)}, {f.format(e.high)}]"


def cell(value: object, digits: int) -> str:
    return interval(value, digits) if isinstance(value, Estimate) else f"{value:,}"


def header(status: ExperimentStatus) -> str:
    e = status.experiment
    state = (
        "running" if e.running else f"stopped by {e.stopped_by} at {e.stopped_at}: {e.stop_reason}"
    )
    return (
        f"experiment {e.name}: {e.mode} of {e.model}, control v{e.control} vs treatment"
        f" v{e.treatment}, share {e.share:g}, key {e.key}, salt {e.salt};"
        f" started {e.started_at} by {e.started_by}; {state}"
    )
