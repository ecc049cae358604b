"""The set of models a worker serves, replaced as one reference.

A `ModelSet` never changes after it is built. The reloader builds a new one beside the old and
`ModelSlot.swap` replaces the reference in one assignment (atomic under the GIL). A request
reads `slot.current` once and keeps that object for its whole life, so the old models (and
their memory maps) are released only when the last request holding them finishes and the
reference count drops to zero: no lock on the hot path and no request sees a mix of versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import rust_core

if TYPE_CHECKING:
    from pyserver.experiments import Route, ServedExperiment


@dataclass(frozen=True)
class LoadedModel:
    """One verified model file, mapped in memory, and where it came from."""

    name: str
    version: str
    model: rust_core.Model
    checksum: str
    path: str
    # Training range of each numeric raw feature, from the manifest's profile.
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=lambda: MappingProxyType({}))
    created_at: str = ""  # the manifest's training time (ISO 8601), for the metrics


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class ModelSet:
    scorer: rust_core.Scorer
    models: Mapping[str, LoadedModel] = field(default_factory=_empty)
    # Running experiments by model (pyserver.experiments), and their routes in the order of
    # the scorer's routing word.
    experiments: Mapping[str, ServedExperiment] = field(default_factory=_empty)
    routes: tuple[Route, ...] = ()

    @cached_property  # read on the request path: built once per set, not per request
    def ranges(self) -> dict[str, Mapping[str, tuple[float, float]]]:
        return {name: loaded.ranges for name, loaded in self.models.items()}

    @cached_property
    def experiment_keys(self) -> frozenset[str]:
        """The context keys of the running experiments (not features, but expected)."""
        return frozenset(served.experiment.key for served in self.experiments.values())

    @property
    def versions(self) -> dict[str, str]:
        return {name: loaded.version for name, loaded in self.models.items()}


class ModelSlot:
    """Holds the current `ModelSet`; `None` until the first complete set is loaded."""

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: ModelSet | None = None

    def swap(self, new: ModelSet) -> ModelSet | None:
        """Install `new` and return the previous set (the caller only logs it)."""
        old, self.current = self.current, new
        return old
