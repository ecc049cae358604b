"""Which daily partitions a retraining run trains on and which it evaluates on.

A run "for day D" with `--window 7d --holdout 1d` evaluates on the holdout days ending at D
(here D itself) and trains on the window days just before them (D-7 .. D-1). Partitions
before the window are kept as `history`: validation compares each day's row count with the
trailing average, and that average needs the days before the window too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from bidscore.errors import BidscoreError

_DAYS = re.compile(r"^\s*(\d+)\s*d?\s*$")


class SelectionError(BidscoreError):
    """The data under the root cannot make the requested window (missing or empty days)."""


@dataclass(frozen=True)
class Partition:
    """One `dt=YYYY-MM-DD` partition: its day, where it lives and how many rows it holds."""

    day: date
    path: str
    rows: int


@dataclass(frozen=True)
class Selection:
    """The partitions of one run, oldest first within each group."""

    train: tuple[Partition, ...]
    holdout: tuple[Partition, ...]
    history: tuple[Partition, ...]
    gaps: tuple[date, ...]  # days inside train/holdout with no rows, only when gaps are allowed

    @property
    def train_days(self) -> tuple[date, date]:
        """First and last day of the training window (inclusive)."""
        return _span(self.train)

    @property
    def holdout_days(self) -> tuple[date, date]:
        """First and last day of the holdout (inclusive)."""
        return _span(self.holdout)

    def describe(self) -> dict[str, Any]:
        """The selection as JSON-ready data for the run record and the manifest."""
        train_start, train_end = self.train_days
        holdout_start, holdout_end = self.holdout_days
        return {
            "train": {"start": train_start.isoformat(), "end": train_end.isoformat()},
            "holdout": {"start": holdout_start.isoformat(), "end": holdout_end.isoformat()},
            "partitions": [
                {"day": p.day.isoformat(), "rows": p.rows, "role": role, "path": p.path}
                for role, group in (("train", self.train), ("holdout", self.holdout))
                for p in group
            ],
            "gaps": [d.isoformat() for d in self.gaps],
        }


def _span(parts: Sequence[Partition]) -> tuple[date, date]:
    return parts[0].day, parts[-1].day


def parse_days(text: str, option: str) -> int:
    """`7d` or `7` -> 7; anything else (or < 1) is a one-line error naming the option."""
    match = _DAYS.match(text)
    if match is None or int(match.group(1)) < 1:
        raise SelectionError(f"{option} must be a number of days such as 7d, got {text!r}")
    return int(match.group(1))


def parse_day(text: str) -> date:
    """`YYYY-MM-DD` -> date, with a one-line error otherwise."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SelectionError(f"--date must be YYYY-MM-DD, got {text!r}") from None


def to_partitions(rows: Iterable[Sequence[Any]]) -> list[Partition]:
    """`features.readers.list_partitions` rows `(date, path, rows)` -> sorted Partitions."""
    parts = []
    for day, path, count in rows:
        parsed = day if isinstance(day, date) else date.fromisoformat(str(day))
        parts.append(Partition(day=parsed, path=str(path), rows=int(count)))
    return sorted(parts, key=lambda p: p.day)


def select(
    partitions: Sequence[Partition],
    *,
    window_days: int,
    holdout_days: int,
    day: date | None = None,
    allow_gaps: bool = False,
) -> Selection:
    """Pick the holdout ending at `day` (default: the newest partition) and the window before it.

    A day of the window or the holdout with no partition, or an empty one, is refused unless
    `allow_gaps`; even then the holdout and the window each need at least one non-empty day.
    """
    if not partitions:
        raise SelectionError("no dt=YYYY-MM-DD partitions found under the data root")
    by_day = {p.day: p for p in partitions}
    end = day or max(by_day)
    if end not in by_day and not allow_gaps:
        newest = max(by_day).isoformat()
        raise SelectionError(f"no partition for {end.isoformat()} (newest is {newest})")
    holdout_range = [end - timedelta(days=i) for i in reversed(range(holdout_days))]
    train_end = holdout_range[0] - timedelta(days=1)
    train_range = [train_end - timedelta(days=i) for i in reversed(range(window_days))]

    gaps = [d for d in train_range + holdout_range if d not in by_day or by_day[d].rows == 0]
    if gaps and not allow_gaps:
        listed = ", ".join(d.isoformat() for d in gaps)
        raise SelectionError(
            f"missing or empty partitions in the window: {listed} "
            "(pass --allow-gaps to train anyway)"
        )
    train = tuple(by_day[d] for d in train_range if d in by_day and by_day[d].rows > 0)
    holdout = tuple(by_day[d] for d in holdout_range if d in by_day and by_day[d].rows > 0)
    if not train:
        raise SelectionError(f"no training data between {train_range[0]} and {train_range[-1]}")
    if not holdout:
        raise SelectionError(f"no holdout data between {holdout_range[0]} and {holdout_range[-1]}")
    history = tuple(p for p in partitions if p.day < train_range[0])
    return Selection(train=train, holdout=holdout, history=history, gaps=tuple(gaps))
