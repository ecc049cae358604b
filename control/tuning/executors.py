"""Where a search's trials run (`control tune --executor`).

`local` is a bounded pool of `workers` threads in this process: each trial trains with the
GIL released, so up to `workers` trials (each with its `--threads`) train at once. The name is
parsed by the one executor parser (`control.scale.executor`) that train and retrain use; trials
do not run on Ray yet (they share one in-memory copy of the folds and report every epoch to
the pruner), so `ray` / `ray://...` is a one-line error before any work starts. Without
`--executor` a search runs one trial at a time; `BIDSCORE_EXECUTOR` (meant for train and
retrain) does not change that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from control.errors import TuningError
from control.scale.executor import ExecutorError
from control.scale.executor import parse_executor as parse_name


@dataclass(frozen=True)
class Executor:
    """How many trials run at once, and where."""

    name: str
    workers: int


def default_workers(threads: int) -> int:
    """As many trials as the machine has cores for at `threads` each."""
    return max(1, (os.cpu_count() or 1) // max(1, threads))


def parse_executor(text: str | None, workers: int | None, threads: int) -> Executor:
    """None: one trial at a time; `local`: a pool of `workers` (default: cores / threads)."""
    if text is None:
        if workers is not None and workers != 1:
            raise TuningError("--workers needs --executor local")
        return Executor("sequential", 1)
    try:
        parsed = parse_name(text)
    except ExecutorError as exc:
        raise TuningError(str(exc)) from None
    if parsed.is_ray:
        raise TuningError(
            f"--executor {parsed.name}: control tune runs its trials in this process"
            " (use --executor local); the Ray executor applies to train and retrain"
        )
    count = default_workers(threads) if workers is None else workers
    if count < 1:
        raise TuningError(f"--workers must be >= 1, got {count}")
    return Executor("local", count)
