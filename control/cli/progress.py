"""Progress of long work (reading, each training epoch, uploads).

- On a terminal: rich progress bars on stderr (`RichObserver`), so `--json` output stays clean.
- Otherwise (a CI log, a scheduler, `| tee`): one plain line per stage and per epoch, with
  counts, on stdout (`PlainObserver`), since nobody watches a bar in a log file; nothing under
  `--json` when stderr is not a terminal either, so that stdout stays one JSON document.

`observer(json_out)` picks one.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from control.cli.output import console as out_console
from control.cli.output import err_console


class RichObserver:
    """A `control.training.Observer` drawing one bar per stage."""

    def __init__(self, console: Console | None = None) -> None:
        console = console or err_console
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._stage: TaskID | None = None
        self._epochs: TaskID | None = None
        self._bytes: TaskID | None = None

    def __enter__(self) -> RichObserver:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish_stage()
        self._progress.stop()

    def _finish_stage(self) -> None:
        if self._stage is not None:
            self._progress.update(self._stage, total=1, completed=1)
            self._stage = None

    def stage(self, name: str) -> None:
        self._finish_stage()
        if not name.startswith("training"):  # training has its own bar, one step per epoch
            self._stage = self._progress.add_task(name, total=None)

    def epoch(
        self, epoch: int, epochs: int, train_logloss: float, valid_logloss: float | None
    ) -> None:
        if self._epochs is None:
            self._epochs = self._progress.add_task("epochs", total=epochs)
        valid = "-" if valid_logloss is None else f"{valid_logloss:.5f}"
        self._progress.update(
            self._epochs,
            completed=epoch,
            description=f"epoch {epoch}: train {train_logloss:.5f} valid {valid}",
        )

    def transfer(self, name: str, total_bytes: int) -> None:
        self._finish_stage()
        self._bytes = self._progress.add_task(f"upload {name}", total=total_bytes)
        # Bytes read better as sizes than as counts.
        self._progress.columns = (
            *self._progress.columns[:-2],
            DownloadColumn(),
            TimeElapsedColumn(),
        )

    def advance(self, nbytes: int) -> None:
        if self._bytes is not None:
            self._progress.advance(self._bytes, nbytes)


class PlainObserver:
    """A `control.training.Observer` printing one line per stage, epoch and upload."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._upload: tuple[str, int] | None = None

    def __enter__(self) -> PlainObserver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass

    def _line(self, text: str) -> None:
        print(text, file=self._stream or sys.stdout, flush=True)

    def stage(self, name: str) -> None:
        self._line(name)

    def epoch(
        self, epoch: int, epochs: int, train_logloss: float, valid_logloss: float | None
    ) -> None:
        valid = "-" if valid_logloss is None else f"{valid_logloss:.5f}"
        self._line(f"epoch {epoch}/{epochs}: train logloss {train_logloss:.5f}, valid {valid}")

    def transfer(self, name: str, total_bytes: int) -> None:
        self._line(f"uploading {name}: {total_bytes:,} bytes")

    def advance(self, nbytes: int) -> None:
        pass


class _Silent(PlainObserver):
    def _line(self, text: str) -> None:
        pass


def observer(json_out: bool = False) -> RichObserver | PlainObserver:
    """Bars on a terminal, plain lines in a log, nothing that would break `--json` output."""
    if err_console.is_terminal and (json_out or out_console.is_terminal):
        return RichObserver()
    if json_out:
        return _Silent()
    return PlainObserver()
