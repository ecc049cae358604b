"""The root `control` Typer app.

Each command group lives in its own module under `control/cli/` and is joined here with one
`app.add_typer(...)` (a group of sub-commands) or `app.command(...)` (a single command) line.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="control",
    help="Train, evaluate, register, promote and roll back bidscore models.",
    no_args_is_help=True,
    add_completion=False,
    # User errors leave through typer.Exit with one line on stderr; anything else is a bug
    # and deserves its plain traceback rather than a multi-page rich rendering.
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        # The package version (and the git commit in a checkout), as manifests record it.
        from bidscore.manifest import code_version  # noqa: PLC0415 -- only for --version

        typer.echo(f"control (bidscore) {code_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the bidscore version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Train, evaluate, register, promote and roll back bidscore models."""


# --- registrations: one line per command module -------------------------------------------
# (imports follow the app on purpose: E402 is expected here)
from control.cli import history, models, promote, train  # noqa: E402

app.command("train")(train.train)
app.add_typer(models.app, name="models")
app.command("promote")(promote.promote)
app.command("rollback")(promote.rollback)
app.command("history")(history.history)
from control.cli.serve import serve  # noqa: E402 -- registrations follow the app

app.command("serve")(serve)
from control.cli.loadtest import loadtest  # noqa: E402 -- registrations follow the app

app.command("loadtest")(loadtest)
from control.cli.datagen import datagen  # noqa: E402 -- registrations follow the app

app.command("datagen")(datagen)
from control.cli import retrain, runs  # noqa: E402 -- registrations follow the app

app.command("retrain")(retrain.retrain)
app.add_typer(runs.app, name="runs")
from control.cli.monitor import app as monitor_app  # noqa: E402 -- registrations follow the app

app.add_typer(monitor_app, name="monitor")
from control.cli.tune import tune  # noqa: E402 -- registrations follow the app

app.command("tune")(tune)


def main() -> None:
    """Entry point of the installed `control` script."""
    app()


if __name__ == "__main__":
    main()
