"""`control datagen`: write realistic labelled bid logs (control.datagen) to Parquet.

Examples::

    control datagen --rows 100000 --seed 1 --out logs.parquet
    control datagen --rows 100000 --seed 1 --days 14 --shift-from-day 10 --out logs/
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from control.cli.options import JsonOpt
from control.cli.output import console, err_console, fail, print_json


def _start(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"must be YYYY-MM-DD, got {value!r}") from None


def _occupied(out: Path, *, partitioned: bool) -> str | None:
    """Why writing to `out` would destroy or mix data (None: it is safe)."""
    if not partitioned:
        if out.is_dir():
            return "is a directory"
        return "exists" if out.exists() else None
    if out.exists() and not out.is_dir():
        return "exists and is not a directory"
    if out.is_dir() and any(out.iterdir()):
        # New partitions would sit beside (or replace) other data: a reader of the directory
        # then mixes two generated datasets without a word.
        return "is a directory that is not empty"
    return None


def datagen(  # noqa: PLR0917 -- Typer maps each parameter to one option
    rows: Annotated[
        int, typer.Option("--rows", min=1, help="Rows to write (per day with --days).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Output file (.parquet, .csv, .jsonl), or with --days a directory of "
            "dt=YYYY-MM-DD/part-0.parquet partitions.",
        ),
    ],
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Random seed: same seed, same bytes.")
    ] = 0,
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="Write this many daily partitions.")
    ] = None,
    candidates: Annotated[
        int, typer.Option("--candidates", min=1, help="Ad candidates (rows) per bid request.")
    ] = 1,
    downsample_negatives: Annotated[
        float | None,
        typer.Option(
            "--downsample-negatives",
            help="Keep negatives with this probability; adds a `weight` column (1/rate).",
        ),
    ] = None,
    shift_from_day: Annotated[
        int | None,
        typer.Option(
            "--shift-from-day",
            min=0,
            help="From this day index on, shift the OS mix and app popularity "
            "(control.datagen.SHIFTED_FEATURES).",
        ),
    ] = None,
    shrink_from_day: Annotated[
        int | None,
        typer.Option("--shrink-from-day", min=0, help="From this day index on, fewer rows."),
    ] = None,
    shrink_factor: Annotated[
        float, typer.Option("--shrink-factor", help="Row multiplier with --shrink-from-day.")
    ] = 0.5,
    start: Annotated[
        str, typer.Option("--start", help="Date of the first day (UTC), YYYY-MM-DD.")
    ] = "2026-11-01",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Overwrite an existing --out file, or write partitions into a non-empty "
            "directory (same dates are replaced, others are kept).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write labelled bid logs of an app-retargeting DSP, from a planted CTR/CVR model."""
    from control.datagen import write_dataset  # noqa: PLC0415 - keeps `control --help` light

    first = _start(start)
    if days is None and (shift_from_day is not None or shrink_from_day is not None):
        fail("--shift-from-day and --shrink-from-day need --days", json_out=as_json)
    problem = None if force else _occupied(out, partitioned=days is not None)
    if problem is not None:
        fail(f"{out}: {problem}; pass --force to write there anyway", json_out=as_json)
    # A bar on a terminal; in a log (cron, CI) one plain line per day written.
    bar = err_console.is_terminal
    progress = Progress(
        TextColumn("writing days"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=days is None or as_json or not bar,
        transient=True,
    )

    def advance(done: int, total: int) -> None:
        if bar:
            progress.update(task, completed=done)
        elif days is not None and not as_json:
            print(f"wrote day {done}/{total}", file=sys.stderr, flush=True)

    with progress:
        task = progress.add_task("days", total=days or 1)
        try:
            summary = write_dataset(
                out,
                rows,
                seed,
                candidates=candidates,
                days=days,
                start=first,
                downsample_negatives=downsample_negatives,
                shift_from_day=shift_from_day,
                shrink_from_day=shrink_from_day,
                shrink_factor=shrink_factor,
                progress=advance,
            )
        except (ValueError, OSError) as exc:
            fail(str(exc), json_out=as_json)
    if as_json:
        print_json(
            {
                "rows": summary.rows,
                "clicks": summary.clicks,
                "conversions": summary.conversions,
                "ctr": summary.ctr,
                "cvr": summary.cvr,
                "files": [str(f) for f in summary.files],
                "out": str(out),
            }
        )
        return
    where = f"{len(summary.files)} files under {out}" if days is not None else str(out)
    console.print(
        f"wrote {summary.rows:,} rows, CTR {summary.ctr:.2%}, CVR {summary.cvr:.2%}, {where}",
        highlight=False,
        soft_wrap=True,
    )
