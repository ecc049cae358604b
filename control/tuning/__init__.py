"""Hyper-parameter search and cross-validation (`control tune`).

- `search.py`: the Optuna study (`tune_ffm`, `tune_lr`, `search` over folds), with pruning
  fed by rust_core's per-epoch progress callback;
- `space.py`: the search space of each algorithm and its starting point (the defaults);
- `folds.py`: forward-chaining folds by day and random K-fold;
- `executors.py`: where trials run (`local` bounded pool; `ray` is not available yet);
- `saved.py`: the chosen parameters saved per model in the registry, and how `control
  train` / `control retrain` layer them under explicit options;
- `run.py`: logs -> folds -> search, for the CLI;
- `plots.py`: the search's page (metric per trial, parameter importances).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from control.tuning.search import (
        Fold,
        SearchOptions,
        TrialRecord,
        TuneResult,
        TuningError,
        run_search,
        tune_ffm,
        tune_lr,
    )

__all__ = [
    "Fold",
    "SearchOptions",
    "TrialRecord",
    "TuneResult",
    "TuningError",
    "run_search",
    "tune_ffm",
    "tune_lr",
]


def __getattr__(name: str) -> Any:
    # Lazy: `control train` reads saved parameters (control.tuning.saved) without importing
    # optuna, which only `control tune` needs (the `tune` extra).
    if name in __all__:
        return getattr(importlib.import_module("control.tuning.search"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
