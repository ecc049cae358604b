"""Where a search's trials run (`control tune --executor`).

`local` is a bounded pool of `workers` threads in this process: each trial trains with the
GIL released, so up to `workers` trials (each with its `--threads`) train at once. `ray` /
`ray://HOST:PORT` run every trial as a Ray task reserving `--threads` CPUs, `workers` at once
(default: the Ray cluster's CPUs / threads), with the study on this process
(`control.tuning.distributed`). The name is parsed by the one executor parser
(`control.scale.executor`) that train and retrain use. Without `--executor` a search runs one
trial at a time; `BIDSCORE_EXECUTOR` (meant for train and retrain) does not change that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from control.errors import TuningError
from control.scale.executor import Executor as Runner
from control.scale.executor import ExecutorError
from control.scale.executor import parse_executor as parse_name


@dataclass(frozen=True)
class Executor:
    """How many trials run at once, and where."""

    name: str
    workers: int  # 0: decided when Ray is connected (its CPUs / threads)
    ray: Runner | None = None  # where the trials run, for a Ray executor

    def on_ray(self, cluster_cpus: float, threads: int) -> Executor:
        """The executor with `workers` decided from the connected cluster's CPUs."""
        if self.workers:
            return self
        return Executor(self.name, max(1, int(cluster_cpus) // max(1, threads)), self.ray)


def default_workers(threads: int) -> int:
    """As many trials as the machine has cores for at `threads` each."""
    return max(1, (os.cpu_count() or 1) // max(1, threads))


def parse_executor(
    text: str | None, workers: int | None, threads: int, ray_cpus: int | None = None
) -> Executor:
    """None: one trial at a time; `local`: a pool of `workers` (default: cores / threads);
    `ray` / `ray://...`: Ray tasks, `workers` at once (default: the cluster's CPUs / threads)."""
    if text is None:
        if workers is not None and workers != 1:
            raise TuningError("--workers needs --executor local")
        return Executor("sequential", 1)
    try:
        parsed = parse_name(text, ray_cpus=ray_cpus)
    except ExecutorError as exc:
        raise TuningError(str(exc)) from None
    if workers is not None and workers < 1:
        raise TuningError(f"--workers must be >= 1, got {workers}")
    if parsed.is_ray:
        return Executor(parsed.name, workers or 0, parsed)
    count = default_workers(threads) if workers is None else workers
    if count < 1:
        raise TuningError(f"--workers must be >= 1, got {count}")
    return Executor("local", count)
