"""What `control tune` searches: one space per algorithm, and the starting point.

Every space is sampled by Optuna's seeded TPE sampler. Epochs are not sampled: each trial
trains with early stopping on its validation rows (up to `MAX_EPOCHS`), and the chosen
parameters record the best epoch as `epochs` with `auto_stop` off, so the same keyword
arguments passed to `rust_core.train_ffm` / `train_lr` retrain the same model.

The first trial is always the current defaults (`rust_core.ffm_defaults()` /
`lr_defaults()`, clipped into the space), so a search never ends worse than them on its
own validation rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from control.training import DEFAULTS

MAX_EPOCHS = 50

# LR's l1/l2 default to 0, which a log-uniform range cannot hold: its floor stands for "none".
_LR_REG_FLOOR = 1e-8


def _ffm(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "k": trial.suggest_int("k", 4, 16),
        "eta": trial.suggest_float("eta", 0.01, 0.5, log=True),
        "l2": trial.suggest_float("l2", 1e-6, 1e-3, log=True),
        "normalize": trial.suggest_categorical("normalize", [True, False]),
    }


def _lr(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "alpha": trial.suggest_float("alpha", 0.005, 1.0, log=True),
        "beta": trial.suggest_float("beta", 0.1, 10.0, log=True),
        "l1": trial.suggest_float("l1", _LR_REG_FLOOR, 1.0, log=True),
        "l2": trial.suggest_float("l2", _LR_REG_FLOOR, 1.0, log=True),
    }


def _clip(value: Any, low: float, high: float) -> Any:
    return min(max(value, low), high)


def _ffm_start() -> dict[str, Any]:
    d = DEFAULTS["ffm"]
    return {
        "k": int(_clip(d["k"], 4, 16)),
        "eta": float(_clip(d["eta"], 0.01, 0.5)),
        "l2": float(_clip(d["l2"], 1e-6, 1e-3)),
        "normalize": bool(d["normalize"]),
    }


def _lr_start() -> dict[str, Any]:
    d = DEFAULTS["lr"]
    return {
        "alpha": float(_clip(d["alpha"], 0.005, 1.0)),
        "beta": float(_clip(d["beta"], 0.1, 10.0)),
        "l1": float(_clip(d["l1"], _LR_REG_FLOOR, 1.0)),
        "l2": float(_clip(d["l2"], _LR_REG_FLOOR, 1.0)),
    }


@dataclass(frozen=True)
class Space:
    """An algorithm's search space: how a trial samples it, and the defaults' point in it."""

    algorithm: str
    suggest: Callable[[optuna.Trial], dict[str, Any]]
    start: Callable[[], dict[str, Any]]


SPACES = {"ffm": Space("ffm", _ffm, _ffm_start), "lr": Space("lr", _lr, _lr_start)}
