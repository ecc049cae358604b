"""How `control` commands talk to people and scripts.

Results go to stdout (a rich table, or JSON with `--json`); errors go to stderr as one line
and leave through `typer.Exit` with a code scripts can branch on. Under `--json` an error is
also printed on stdout as `{"error": "...", "exit_code": N}`, so a script reads one JSON
document whatever happened.
"""

from __future__ import annotations

import contextvars
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console

import rust_core
from bidscore.errors import BidscoreError, ConflictError, IntegrityError
from control.errors import GateError, UnknownAliasError
from control.exits import EXIT_CONFLICT, EXIT_ERROR, EXIT_REFUSED, EXIT_USAGE
from features.errors import FeatureError

# rust_core's data and model-format errors and the features package's errors (FeatureError,
# and its LogReadError for unreadable logs) describe bad input, not bugs.
_INPUT_ERRORS: tuple[type[Exception], ...] = (
    FeatureError,
    *(
        e
        for e in (
            getattr(rust_core, "DataError", None),
            getattr(rust_core, "ModelFormatError", None),
        )
        if isinstance(e, type) and issubclass(e, Exception)
    ),
)


# Piped output (scripts, CI logs) gets a wide console rather than rich's 80-column fallback,
# so that tables are not squeezed into ellipses; a terminal keeps its own width.
_PIPE_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
console = Console(width=_PIPE_WIDTH)
err_console = Console(stderr=True)


# Set by `user_errors(json_out=True)`: a `fail` inside it answers in JSON on stdout as well.
_json_errors: contextvars.ContextVar[bool] = contextvars.ContextVar("json_errors", default=False)


def fail(message: str, code: int = EXIT_ERROR, *, json_out: bool | None = None) -> NoReturn:
    """Print `error: message` as one line on stderr (and, for `--json`, the error as JSON on
    stdout) and exit with `code`."""
    one_line = " ".join(str(message).split())
    if json_out if json_out is not None else _json_errors.get():
        print(json.dumps({"error": one_line, "exit_code": code}, sort_keys=True))
    err_console.print(f"error: {one_line}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    """JSON for scripts: plain `print`, so rich never wraps or colours it."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


@contextmanager
def user_errors(json_out: bool = False) -> Iterator[None]:
    """Turn the control plane's expected failures into one-line errors and exit codes (and
    JSON errors on stdout when `json_out`, for `fail` calls inside the block too).

    Only error types that describe bad input or an unreachable service are caught; anything
    else is a bug and keeps its traceback.
    """
    token = _json_errors.set(json_out)
    try:
        yield
    except BidscoreError as exc:
        fail(str(exc), exit_code_for(exc))
    except _INPUT_ERRORS as exc:
        fail(str(exc), EXIT_ERROR)
    finally:
        _json_errors.reset(token)


@contextmanager
def needs_extra(extra: str, command: str) -> Iterator[None]:
    """Around the lazy imports of a command whose packages come with an optional extra
    (pyproject.toml): a missing one is a one-line error naming what to install."""
    try:
        yield
    except ImportError as exc:
        fail(f"{command} needs the [{extra}] extra ({exc}): pip install 'bidscore[{extra}]'")


def exit_code_for(exc: BidscoreError) -> int:
    """3 for a lost race (worth a retry), 4 for a refused promotion, 2 for an alias that does
    not exist (a usage error), 1 for the rest."""
    if isinstance(exc, ConflictError):
        return EXIT_CONFLICT
    if isinstance(exc, UnknownAliasError):
        return EXIT_USAGE
    if isinstance(exc, GateError | IntegrityError):
        return EXIT_REFUSED
    return EXIT_ERROR
