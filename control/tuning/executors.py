"""Where a search's trials run (`control tune --executor`).

`local` is a bounded pool of `workers` threads in this process: each trial trains with the
GIL released, so up to `workers` trials (each with its `--threads`) train at once. The Ray
executor (`ray`, `ray://host:port`) does not exist in this codebase yet; asking for it is a
one-line error before any work starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from control.errors import TuningError


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
    if text == "ray" or text.startswith("ray://"):
        raise TuningError(f"--executor {text} needs the Ray executor (not available yet)")
    if text != "local":
        raise TuningError(f"unknown executor {text!r} (use local; ray is not available yet)")
    count = default_workers(threads) if workers is None else workers
    if count < 1:
        raise TuningError(f"--workers must be >= 1, got {count}")
    return Executor("local", count)
