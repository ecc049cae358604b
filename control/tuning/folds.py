"""Cross-validation folds for `control tune --cv K`.

- By day (data in `dt=` partitions): forward chaining. Fold j trains on every day up to day
  d_j and validates on the next day d_j + 1; the K folds are the K newest such days, so a fold
  never trains on the day it validates on, nor on anything after it.
- Otherwise: random K-fold over rows (seeded); every row is validated on exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from control.errors import TuningError

Indices = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DayFold:
    """Train on `train_days` (all before `valid_day`), validate on `valid_day`."""

    train_days: tuple[date, ...]
    valid_day: date

    @property
    def name(self) -> str:
        return f"train {self.train_days[0]}..{self.train_days[-1]}, valid {self.valid_day}"


@dataclass(frozen=True)
class RowFold:
    """Train on rows `train`, validate on rows `valid` (sorted indices, disjoint)."""

    index: int
    train: Indices
    valid: Indices

    @property
    def name(self) -> str:
        return f"fold {self.index + 1}: {len(self.train)} train, {len(self.valid)} valid rows"


def check_k(k: int) -> None:
    if k < 2:
        raise TuningError(f"--cv needs K >= 2 folds, got {k}")


def day_folds(days: Sequence[date], k: int) -> list[DayFold]:
    """Forward-chaining folds over `days`: the last `k` days each validate once."""
    check_k(k)
    ordered = sorted(set(days))
    if len(ordered) < k + 1:
        raise TuningError(
            f"--cv {k} by day needs at least {k + 1} daily partitions, found {len(ordered)}"
        )
    return [DayFold(tuple(ordered[:j]), ordered[j]) for j in range(len(ordered) - k, len(ordered))]


def random_folds(rows: int, k: int, seed: int) -> list[RowFold]:
    """Seeded random K-fold over `rows` rows."""
    check_k(k)
    if rows < k:
        raise TuningError(f"--cv {k} needs at least {k} rows, got {rows}")
    order = np.random.default_rng(seed).permutation(rows).astype(np.int64)
    parts = np.array_split(order, k)
    return [
        RowFold(
            i,
            np.sort(np.concatenate([p for j, p in enumerate(parts) if j != i])),
            np.sort(part),
        )
        for i, part in enumerate(parts)
    ]
