"""How `control experiment status` reads on a terminal: the arms side by side with their
intervals, the difference, the sample-ratio test, a canary's guardrails and the verdict."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from control.cli.output import console
from control.experiments.arms import METHODS, Measurement
from control.experiments.status import ExperimentStatus
from control.experiments.text import ARM_ROWS, cell, header, interval, rate_name


def arms_table(m: Measurement) -> Table:
    rate = rate_name(m.label)
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
    for label, attr, digits, diff in ARM_ROWS:
        cells = [cell(getattr(arm, attr), digits) for arm in (m.control, m.treatment)]
        delta = interval(m.differences[diff], digits, signed=True) if diff else ""
        table.add_row(label.format(rate=rate), *cells, delta)
    return table


def say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


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
