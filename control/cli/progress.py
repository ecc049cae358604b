"""Rich progress bars for long work (reading, each training epoch, uploads), on stderr so that
`--json` output stays clean, and only on a terminal so that logs and tests stay quiet."""

from __future__ import annotations

from types import TracebackType

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
        if name != "training":  # training has its own bar, one step per epoch
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
