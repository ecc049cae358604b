"""`control history MODEL [--alias production]`: every move of an alias."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bidscore.registry import NotFoundError
from control.cli.options import AliasOpt, JsonOpt, RegistryOpt
from control.cli.output import console, print_json, user_errors
from control.cli.registries import for_reading


def history(
    model: Annotated[str, typer.Argument(help="Model name, e.g. ctr.")],
    alias: AliasOpt = "production",
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Who moved the alias, when, from which version to which, and why (oldest first)."""
    with user_errors(json_out):
        reg = for_reading(registry)
        moves = reg.alias_history(model, alias)
        if not moves and not reg.list_versions(model):
            raise NotFoundError(f"unknown model {model!r}: no version registered")
    if json_out:
        print_json([m.to_dict() for m in moves])
        return
    table = Table(title=f"history of {model}/{alias}")
    for column in ("gen", "when (UTC)", "kind", "from", "to", "by", "reason"):
        table.add_column(column, justify="right" if column == "gen" else "left")
    for move in moves:
        table.add_row(
            str(move.generation),
            move.at[:19].replace("T", " "),
            move.kind,
            move.from_version or "-",
            move.to_version,
            move.actor,
            escape(move.reason),  # a reason is text, never rich markup
        )
    console.print(table)
    if not moves:
        console.print(f"{model}/{alias} has never been moved")
