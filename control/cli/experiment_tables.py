"""How `control experiment status` reads on a terminal: the arms side by side with their
intervals, the difference, the sample-ratio test, a canary's guardrails and the verdict."""

from __future__ import annotations

import math

from rich.markup import escape
from rich.table import Table

from control.cli.output import console
from control.experiments.arms import METHODS, ArmMetrics, Measurement
from control.experiments.stats import Estimate
from control.experiments.status import ExperimentStatus


def number(value: float, digits: int = 4) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}"


def interval(e: Estimate, digits: int = 4, signed: bool = False) -> str:
    """`0.0296 [0.0267, 0.0328]` (signed: `+0.0005 [-0.0030, +0.0043]`)."""
    if not math.isfinite(e.value):
        return "-"
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    if not (math.isfinite(e.low) and math.isfinite(e.high)):
        return f.format(e.value)
    return f"{f.format(e.value)} [{f.format(e.low)}, {f.format(e.high)}]"


def say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def header(status: ExperimentStatus) -> str:
    e = status.experiment
    state = (
        e.state if e.running else f"stopped by {e.stopped_by} at {e.stopped_at}: {e.stop_reason}"
    )
    return (
        f"experiment {e.name}: {e.mode} of {e.model}, control v{e.control} vs treatment"
        f" v{e.treatment}, share {e.share:g}, key {e.key}, salt {e.salt};"
        f" started {e.started_at} by {e.started_by}; {state}"
    )


# (row label, how to read it from an arm, digits, the difference's key or None)
_ROWS: tuple[tuple[str, str, int, str | None], ...] = (
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


def arms_table(m: Measurement) -> Table:
    rate = "CTR" if m.label == "click" else "CVR" if m.label == "conversion" else f"{m.label} rate"
    caption = (
        "95% intervals: rate Wilson (difference Newcombe); mean prediction and logloss normal"
        f"{' (paired: the same impressions)' if m.paired else ''}; calibration delta method;"
        f" AUC {METHODS['auc']}"
    )
    table = Table(title=f"arms of {m.experiment.name}", caption=caption)
    table.add_column("metric")
    table.add_column(f"control v{m.control.version}", justify="right")
    table.add_column(f"treatment v{m.treatment.version}", justify="right")
    table.add_column("treatment - control", justify="right")
    for label, attr, digits, diff in _ROWS:
        cells = [_cell(arm, attr, digits) for arm in (m.control, m.treatment)]
        delta = interval(m.differences[diff], digits, signed=True) if diff else ""
        table.add_row(label.format(rate=rate), *cells, delta)
    return table


def _cell(arm: ArmMetrics, attr: str, digits: int) -> str:
    value = getattr(arm, attr)
    if isinstance(value, Estimate):
        return interval(value, digits)
    return f"{value:,}"


def print_status(status: ExperimentStatus) -> None:
    say(header(status))
    m = status.measurement
    if m is None:
        say("give --predictions and --outcomes to measure the arms on realised outcomes")
        return
    console.print(arms_table(m))
    say(f"sample ratio: {m.srm.describe()}")
    if status.guardrails:
        table = Table(title="canary guardrails")
        table.add_column("guardrail")
        table.add_column("state")
        table.add_column("detail")
        for g in status.guardrails:
            style = "bold red" if g.breached else ""
            state = f"[{style}]{g.state}[/]" if style else g.state
            table.add_row(g.name, state, escape(g.detail))
        console.print(table)
    say(f"verdict (decided on {m.verdict.metric}): {m.verdict.line}")
