"""Numeric feature values against their training range, on the requests that are checked.

Each model's manifest profile records `min` and `max` of every numeric raw feature in its
training data (control/profile.py). A value outside that range is counted per model and
feature (`bidscore_feature_out_of_range_total`): the model never saw such a value, and a
spike there is the first sign of a client sending dollars as micros. A value that is not finite
once converted to f32 (`bid_price="1e39"`: a finite f64, an infinite f32) is counted in
`bidscore_feature_not_finite_total`; rust_core then refuses the request (INVALID_ARGUMENT
naming the feature and the candidate), with or without --strict-features.

Only the requests `feature_keys.UnknownFeatures` parses are looked at (every request with
--strict-features, one in 32 without).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter

from bidscore.v1 import scorer_pb2
from pyserver.errors import RequestError

F32_MAX = 3.4028234663852886e38
# model -> feature -> (min, max) of the training data.
Ranges = Mapping[str, Mapping[str, tuple[float, float]]]


def numeric_ranges(profile: Mapping[str, Any]) -> Mapping[str, tuple[float, float]]:
    """`{feature: (min, max)}` of the numeric features of a manifest profile."""
    ranges: dict[str, tuple[float, float]] = {}
    for name, entry in profile.items():
        if not isinstance(entry, Mapping) or entry.get("type") not in ("int", "float"):
            continue
        low, high = entry.get("min"), entry.get("max")
        if isinstance(low, int | float) and isinstance(high, int | float):
            ranges[name] = (float(low), float(high))
    return MappingProxyType(ranges)


class RangeChecks:
    def __init__(
        self,
        numeric: Iterable[tuple[str, str]],
        *,
        strict: bool,
        registry: CollectorRegistry,
    ) -> None:
        """`numeric`: (feature, source) of the schema's numeric raw features."""
        pairs = list(numeric)
        self._context = [name for name, source in pairs if source == "context"]
        self._candidate = [name for name, source in pairs if source == "candidate"]
        self._strict = strict
        self._out_of_range = Counter(
            "bidscore_feature_out_of_range",
            "Numeric feature values outside the model's training range (profile min..max), "
            "in checked requests.",
            ["model", "feature"],
            registry=registry,
        )
        self._not_finite = Counter(
            "bidscore_feature_not_finite",
            "Numeric feature values that are not finite as f32 (e.g. 1e39), in checked requests.",
            ["feature"],
            registry=registry,
        )

    def check(self, message: scorer_pb2.ScoreRequest, ranges: Ranges) -> None:
        for name in self._context:
            if name in message.context:
                self._value(name, message.context[name], ranges, "the request context")
        if not self._candidate:
            return
        for index, candidate in enumerate(message.candidates):
            features = candidate.features
            for name in self._candidate:
                if name in features:
                    where = f"candidate {index} ({candidate.id!r})"
                    self._value(name, features[name], ranges, where)

    def _value(self, name: str, text: str, ranges: Ranges, where: str) -> None:
        try:
            value = float(text)
        except ValueError:
            return  # rust_core reports values that do not parse
        if not (math.isfinite(value) and abs(value) <= F32_MAX):
            self._not_finite.labels(feature=name).inc()
            if self._strict:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"feature {name!r} in {where}: {text!r} is not a finite 32-bit float",
                )
            return
        for model, features in ranges.items():
            bounds = features.get(name)
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                self._out_of_range.labels(model=model, feature=name).inc()
