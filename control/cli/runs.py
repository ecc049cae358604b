"""`control runs list MODEL` and `control runs show RUN_ID`: the retraining runs' records."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from control.cli.options import JsonOpt, RegistryOpt
from control.cli.output import console, print_json, user_errors
from control.cli.registries import for_reading
from control.retrain.report import render_run

app = typer.Typer(help="Retraining runs recorded in the registry.", no_args_is_help=True)


def _days(run: dict[str, Any], role: str) -> str:
    span = ((run.get("inputs") or {}).get("selection") or {}).get(role)
    if not span:
        return "-"
    start, end = str(span["start"]), str(span["end"])
    if start == end:
        return start
    # 2026-11-01..11-07: the year once, so the row fits a terminal
    return f"{start}..{end[5:]}" if start[:4] == end[:4] else f"{start}..{end}"


@app.command("list")
def list_runs(
    model: Annotated[str, typer.Argument(help="Model name, e.g. ctr.")],
    limit: Annotated[int, typer.Option(help="Show the newest N runs (0 = all).")] = 20,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List a model's retraining runs, newest last."""
    with user_errors(json_out):
        runs = for_reading(registry).list_runs(model)
    runs = sorted(runs, key=lambda r: str(r.get("started_at", "")))
    if limit > 0:
        runs = runs[-limit:]
    if json_out:
        print_json(runs)
        return
    table = Table(title=f"retraining runs of {model} (control runs show RUN for details)")
    # The run id starts with the model and the start time, so it doubles as the "when".
    table.add_column("run", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("train")
    table.add_column("holdout")
    table.add_column("version")
    table.add_column("decision", no_wrap=True)
    for run in runs:
        table.add_row(
            str(run.get("run_id")),
            str(run.get("status", "")),
            _days(run, "train"),
            _days(run, "holdout"),
            str(run.get("version") or "-"),
            str((run.get("decision") or {}).get("action", "")),
        )
    console.print(table)


@app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="The run id printed by control retrain.")],
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one run: its inputs, each step's outcome and timing, the comparison and decision."""
    with user_errors(json_out):
        run = for_reading(registry).get_run(run_id)
    if json_out:
        print_json(run)
        return
    render_run(run, console)
