"""Tuned parameters saved per model in the registry, and how training uses them.

`control tune --save` stores one record per model (`Registry.put_params`): the algorithm,
the chosen hyper-parameters, the study summary and the data window. `control train` and
`control retrain` start from it unless told `--params default`:

    defaults  <-  (retrain: the production version's values)  <-  saved  <-  explicit options

Saved values apply only to the algorithm they were tuned for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bidscore.manifest import code_version
from bidscore.registry import Registry
from bidscore.registry.base import utc_now
from control.errors import TrainingInputError
from control.training import DEFAULTS

if TYPE_CHECKING:  # training reads saved parameters without optuna installed
    from control.tuning.search import TuneResult

PARAM_SOURCES = ("saved", "default")


def record(result: TuneResult, model: str, data: dict[str, Any]) -> dict[str, Any]:
    """What `--save` stores: parameters, the study summary and the data it was tuned on."""
    return {
        "model": model,
        "algorithm": result.algorithm,
        "params": {k: v for k, v in result.params.items() if k in DEFAULTS[result.algorithm]},
        "study": result.summary(),
        "data": data,
        "saved_at": utc_now(),
        "code_version": code_version(),
    }


def check_source(source: str) -> str:
    if source not in PARAM_SOURCES:
        raise TrainingInputError(f"--params must be saved or default, got {source!r}")
    return source


def saved_for(registry: Registry, model: str, source: str) -> dict[str, Any] | None:
    """The model's saved record, or None for `--params default` (or when none was saved)."""
    if check_source(source) == "default":
        return None
    return registry.get_params(model)


def saved_params(saved: dict[str, Any] | None, algo: str) -> dict[str, Any]:
    """The saved hyper-parameters that apply to `algo` (none if tuned for another one)."""
    if saved is None or saved.get("algorithm") != algo:
        return {}
    names = DEFAULTS.get(algo, {})
    return {k: v for k, v in dict(saved.get("params", {})).items() if k in names}


def layered(
    algo: str, saved: dict[str, Any] | None, explicit: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """Saved parameters under explicit ones (None values are "not given"), and where the
    base came from: "saved" or "default"."""
    base = saved_params(saved, algo)
    given = {k: v for k, v in explicit.items() if v is not None}
    return base | given, "saved" if base else "default"
