"""Several models' jobs at once (`control train|retrain --model ctr --model cvr`).

On the Ray executor each model's job is a Ray task reserving `--threads` CPUs, so Ray runs as
many at once as the cluster has CPUs for; on the local executor a process pool of at most
`cores // threads` workers (processes, not threads: each job holds its own tables, registry
connection and lock heartbeat, and a crash takes down one job, not the others). Every job
returns an `Outcome`; none raises, so one model's failure never stops another's.

The exit code of a multi-model command is 0 when every model's job exited 0, else
`EXIT_MODELS_FAILED + mask` where bit i is set when the i-th `--model` failed (ctr first,
cvr second: 101 = ctr failed, 102 = cvr failed, 103 = both). Each model's own exit code (5:
stopped by validation, 75: already running, 1: error) is in the summary table and `--json`.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from control.exits import EXIT_MODELS_FAILED, EXIT_OK
from control.scale.jobs import Outcome

Job = TypeVar("Job")

MAX_MODELS = 7  # bits of the exit code's mask: 100 + 127 stays below 256


def local_workers(models: int, threads: int) -> int:
    """Processes at once on this machine: no more than its cores at `threads` each."""
    return max(1, min(models, (os.cpu_count() or 1) // max(1, threads)))


def run_jobs(
    fn: Callable[[Job], Outcome],
    jobs: Sequence[Job],
    *,
    threads: int,
    ray: Any | None = None,
) -> list[Outcome]:
    """`fn(job)` for every job concurrently; outcomes in the jobs' order."""
    if ray is not None:
        task = ray.remote(num_cpus=threads, max_retries=0)(fn)
        return list(ray.get([task.remote(job) for job in jobs]))
    # spawn: a fresh interpreter per worker, never a fork of a process with threads running.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(local_workers(len(jobs), threads), mp_context=context) as pool:
        return list(pool.map(fn, jobs))


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """0 if every model succeeded, else EXIT_MODELS_FAILED plus the mask of failed models."""
    mask = sum(1 << i for i, o in enumerate(outcomes) if o.exit_code != EXIT_OK)
    return EXIT_OK if mask == 0 else EXIT_MODELS_FAILED + mask


def summary_table(outcomes: Sequence[Outcome], title: str) -> Any:
    """A rich table, one row per model."""
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title)
    for name, justify in (
        ("model", "left"),
        ("exit", "right"),
        ("result", "left"),
        ("version", "right"),
        ("seconds", "right"),
        ("detail", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for o in outcomes:
        style = None if o.exit_code == EXIT_OK else "red"
        table.add_row(
            o.model,
            str(o.exit_code),
            o.action,
            "" if o.version is None else str(o.version),
            f"{o.seconds:.1f}",
            o.detail,
            style=style,
        )
    return table
