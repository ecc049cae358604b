"""Built-in transforms: derived features that compile to the plan `rust_core` executes.

Declared as class attributes of a `FeatureSchema`; the attribute name is the feature name.
Each transform also has a Python reference implementation (`apply`), used when a schema
instance's attribute is read (`request.hour`) and by the pure-Python benchmark baseline;
training and serving never use it, they run the Rust plan. Semantics: docs/architecture.md.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar, Literal

from features.errors import FeatureError

RawType = Literal["str", "int", "float"]


def value_text(value: object) -> str:
    """A value's token text: strings as they are, ints in decimal, floats like Rust's `Display`
    (shortest round-trip digits, never an exponent: `1.5`, `0.1`, `3`)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return {math.inf: "inf", -math.inf: "-inf"}.get(value, "NaN")
        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


class Transform:
    """A derived feature computed from other features of the same schema."""

    op: ClassVar[str]
    arity: ClassVar[tuple[int, int]] = (1, 1)

    def __init__(self, *inputs: str) -> None:
        low, high = self.arity
        if not low <= len(inputs) <= high:
            raise FeatureError(f"{type(self).__name__} takes {low}..{high} inputs, got {inputs}")
        if not all(isinstance(i, str) and i for i in inputs):
            raise FeatureError(f"{type(self).__name__}: inputs must be feature names")
        self.inputs: tuple[str, ...] = inputs
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return self.apply(*(getattr(obj, i) for i in self.inputs))

    def params(self) -> dict[str, Any]:
        return {}

    def output_type(self) -> RawType:
        return "int"

    def check_inputs(self, types: Sequence[RawType]) -> None:
        """Raise FeatureError when an input's declared type does not fit the op."""

    def apply(self, *values: Any) -> Any:
        raise NotImplementedError

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "inputs": list(self.inputs),
            "params": self.params(),
        }

    def _require(self, types: Sequence[RawType], allowed: set[str], what: str) -> None:
        for name, kind in zip(self.inputs, types, strict=True):
            if kind not in allowed:
                raise FeatureError(f"{self.op} needs {what} input, {name!r} is {kind}")


class HourOfDay(Transform):
    """Hour of day (0..23, UTC) of a unix timestamp in seconds."""

    op = "hour_of_day"

    def check_inputs(self, types: Sequence[RawType]) -> None:
        self._require(types, {"int"}, "an int")

    def apply(self, *values: Any) -> int:
        return int(values[0]) // 3600 % 24


class DayOfWeek(Transform):
    """Day of week (Monday = 0, UTC) of a unix timestamp in seconds."""

    op = "day_of_week"

    def check_inputs(self, types: Sequence[RawType]) -> None:
        self._require(types, {"int"}, "an int")

    def apply(self, *values: Any) -> int:
        return (int(values[0]) // 86400 + 3) % 7


class Bucketize(Transform):
    """Index of the bucket of `x` among fixed edges: the number of edges `<= x`."""

    op = "bucketize"

    def __init__(self, feature: str, edges: Sequence[float]) -> None:
        super().__init__(feature)
        clean = [float(e) for e in edges]
        if not clean or not all(math.isfinite(e) for e in clean):
            raise FeatureError("Bucketize: edges must be a non-empty list of finite numbers")
        if any(a >= b for a, b in itertools.pairwise(clean)):
            raise FeatureError(f"Bucketize: edges must be strictly increasing, got {clean}")
        self.edges = clean

    def params(self) -> dict[str, Any]:
        return {"edges": self.edges}

    def check_inputs(self, types: Sequence[RawType]) -> None:
        self._require(types, {"int", "float"}, "a numeric")

    def apply(self, *values: Any) -> int:
        return bisect.bisect_right(self.edges, float(values[0]))


class Clip(Transform):
    """`min(max(x, lo), hi)`: a numeric feature held to the range its model was trained on,
    so that a client sending micros instead of dollars moves the score no further than the
    edge of that range. Use it as a `numeric(...)` field."""

    op = "clip"

    def __init__(self, feature: str, lo: float, hi: float) -> None:
        super().__init__(feature)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise FeatureError(f"Clip: needs finite lo <= hi, got {lo}, {hi}")
        self.lo, self.hi = float(lo), float(hi)

    def params(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi}

    def output_type(self) -> RawType:
        return "float"

    def check_inputs(self, types: Sequence[RawType]) -> None:
        self._require(types, {"int", "float"}, "a numeric")

    def apply(self, *values: Any) -> float:
        return min(max(float(values[0]), self.lo), self.hi)


class LogBucket(Transform):
    """`floor(log_base(1 + max(x, 0)))`: coarse buckets for heavy-tailed amounts."""

    op = "log_bucket"

    def __init__(self, feature: str, base: float = 2.0) -> None:
        super().__init__(feature)
        if not (math.isfinite(base) and base > 1.0):
            raise FeatureError(f"LogBucket: base must be a finite number > 1, got {base}")
        self.base = float(base)

    def params(self) -> dict[str, Any]:
        return {"base": self.base}

    def check_inputs(self, types: Sequence[RawType]) -> None:
        self._require(types, {"int", "float"}, "a numeric")

    def apply(self, *values: Any) -> int:
        return math.floor(math.log(1.0 + max(float(values[0]), 0.0)) / math.log(self.base))


class Lower(Transform):
    """Unicode lower-case of a string feature (for ids and domains sent in mixed case)."""

    op = "lower"

    def output_type(self) -> RawType:
        return "str"

    def check_inputs(self, types: Sequence[RawType]) -> None:
        self._require(types, {"str"}, "a str")

    def apply(self, *values: Any) -> str:
        return str(values[0]).lower()


class Cross(Transform):
    """The conjunction of 2 or 3 features: their texts joined by `^` (`games^com.app`)."""

    op = "cross"
    arity = (2, 3)

    def output_type(self) -> RawType:
        return "str"

    def apply(self, *values: Any) -> str:
        return "^".join(value_text(v) for v in values)
