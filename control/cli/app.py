"""The root `control` Typer app.

Each command group lives in its own module under `control/cli/` and is joined here with one
`app.add_typer(...)` (a group of sub-commands) or `app.command(...)` (a single command) line.
"""

from __future__ import annotations

import json
import sys
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
from control.cli.experiment import app as experiment_app  # noqa: E402 -- registrations follow

app.add_typer(experiment_app, name="experiment")


# Click's base of usage errors (unknown option, missing argument), reached through a public
# Typer class because Typer ships its own copy of Click.
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def main() -> None:
    """Entry point of the installed `control` script.

    With `--json`, a usage error is also printed on stdout as `{"error": ..., "exit_code": 2}`,
    like every other error of a `--json` command (control.cli.output), so a script reads one
    JSON document whatever went wrong.
    """
    if "--json" not in sys.argv[1:]:
        app()
        return
    try:
        code = app(standalone_mode=False)
    except _CLICK_ERROR as exc:
        message = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
        exit_code = int(exc.exit_code)  # type: ignore[attr-defined]
        print(json.dumps({"error": message, "exit_code": exit_code}, sort_keys=True))
        exc.show()  # type: ignore[attr-defined]  # Click's usage text on stderr, as without --json
        sys.exit(exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
