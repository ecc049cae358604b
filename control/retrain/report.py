"""How a retraining run reads to a person: the side-by-side table, the steps, the decision."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

# Which direction is better for each metric of the comparison.
LOWER_IS_BETTER = frozenset({"logloss", "ne"})
METRICS = ("logloss", "auc", "ne", "calibration")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5f}"
    return str(value)


def comparison_table(comparison: dict[str, Any]) -> Table:
    """Champion and challenger on the same holdout, one metric per row."""
    holdout = comparison.get("holdout", {})
    champion = comparison.get("champion") or {}
    title = (
        f"holdout {holdout.get('start')}..{holdout.get('end')}: "
        f"{holdout.get('rows')} rows, {holdout.get('positives')} positives"
    )
    table = Table(title=title)
    table.add_column("metric")
    table.add_column(f"champion v{champion['version']}" if champion else "champion (none)")
    table.add_column("challenger")
    table.add_column("delta")
    table.add_column("better")
    for row in comparison.get("rows", []):
        table.add_row(
            row["metric"],
            _fmt(row.get("champion")),
            _fmt(row.get("challenger")),
            _fmt(row.get("delta")),
            str(row.get("better") or "-"),
        )
    return table


def steps_table(run: dict[str, Any]) -> Table:
    """Each step's outcome and timing."""
    table = Table(title=f"run {run.get('run_id')} ({run.get('status')})")
    for column in ("step", "status", "seconds", "detail"):
        table.add_column(column)
    for step in run.get("steps", []):
        detail = step.get("error") or step.get("detail", {}).get("summary") or ""
        if not detail and step.get("status") == "skipped":
            detail = step.get("detail", {}).get("reason", "")
        seconds = step.get("seconds")
        table.add_row(
            step["name"],
            step["status"],
            "-" if seconds is None else f"{seconds:.2f}",
            str(detail),
        )
    return table


def decision_line(run: dict[str, Any]) -> str:
    """`decision: promoted version 3 to production (...)`."""
    decision = run.get("decision") or {}
    line = f"decision: {decision.get('action', run.get('status'))}"
    if decision.get("reason"):
        line += f" - {decision['reason']}"
    return line


def render_run(run: dict[str, Any], console: Console) -> None:
    """The whole run for `control retrain` and `control runs show`."""
    inputs = run.get("inputs", {})
    selection = inputs.get("selection") or {}
    console.print(
        f"model {run.get('model')}  data {inputs.get('data_root')}  "
        f"started {run.get('started_at')}  finished {run.get('finished_at') or '-'}"
    )
    if selection:
        train, holdout = selection["train"], selection["holdout"]
        console.print(
            f"train {train['start']}..{train['end']}  holdout {holdout['start']}..{holdout['end']}"
        )
    console.print(steps_table(run))
    validation = next(
        (s["detail"].get("validation") for s in run.get("steps", []) if s["name"] == "validate"),
        None,
    )
    if validation and validation.get("checks"):
        checks = Table(title="validation checks that did not pass")
        for column in ("check", "subject", "status", "value", "message"):
            checks.add_column(column)
        for check in validation["checks"]:
            checks.add_row(
                check["name"],
                check["subject"],
                check["status"],
                _fmt(check["value"]),
                check["message"],
            )
        console.print(checks)
    if run.get("comparison"):
        console.print(comparison_table(run["comparison"]))
    console.print(decision_line(run), markup=False, highlight=False)
