"""Per-model feature specs: which features become a model's fields, with the hash seed and
bits, and the spec's stable fingerprint (docs/architecture.md, "Feature plan")."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from features.errors import FeatureError
from features.schema import FeatureSchema

PLAN_VERSION = 1
MAX_BITS = 30
Kind = Literal["categorical", "numeric"]
Algorithm = Literal["ffm", "lr"]


@dataclass(frozen=True)
class Field:
    """One model field: a feature and how it is tokenised."""

    feature: str
    kind: Kind = "categorical"

    def definition(self) -> dict[str, str]:
        return {"feature": self.feature, "kind": self.kind}


def categorical(feature: str) -> Field:
    """One token `feature=text` with value 1."""
    return Field(feature, "categorical")


def numeric(feature: str) -> Field:
    """One token `feature` whose value is the number itself."""
    return Field(feature, "numeric")


@dataclass(frozen=True)
class Target:
    """What a model learns: its label column, optionally only on rows where `where` is 1
    (cvr trains on clicked rows)."""

    label: str
    where: str | None = None


class ModelSpec:
    """The fields of one model over a schema, with its hash seed and bits."""

    def __init__(
        self,
        name: str,
        schema: type[FeatureSchema],
        fields: Sequence[Field | str],
        *,
        bits: int,
        seed: int,
        algorithm: Algorithm = "ffm",
    ) -> None:
        if not name:
            raise FeatureError("a model spec needs a name")
        if not 1 <= bits <= MAX_BITS:
            raise FeatureError(f"spec {name}: bits must be in 1..{MAX_BITS}, got {bits}")
        if not 0 <= seed < 2**64:
            raise FeatureError(f"spec {name}: seed must be an unsigned 64-bit integer")
        if algorithm not in ("ffm", "lr"):
            raise FeatureError(f"spec {name}: algorithm must be 'ffm' or 'lr'")
        self.name = name
        self.schema = schema
        self.fields: tuple[Field, ...] = tuple(
            categorical(f) if isinstance(f, str) else f for f in fields
        )
        self.bits = bits
        self.seed = seed
        self.algorithm: Algorithm = algorithm
        self._validate()

    def _validate(self) -> None:
        info = self.schema.schema_info()
        if not self.fields:
            raise FeatureError(f"spec {self.name}: no fields")
        seen: set[str] = set()
        for field in self.fields:
            if field.feature in seen:
                raise FeatureError(f"spec {self.name}: feature {field.feature!r} listed twice")
            seen.add(field.feature)
            if field.feature not in info.names():
                raise FeatureError(
                    f"spec {self.name}: {self.schema.__name__} has no feature {field.feature!r}"
                )
            if field.kind not in ("categorical", "numeric"):
                raise FeatureError(f"spec {self.name}: unknown field kind {field.kind!r}")
            if field.kind == "numeric" and info.type_of(field.feature) == "str":
                raise FeatureError(
                    f"spec {self.name}: numeric field {field.feature!r} is a str feature"
                )

    def reached(self) -> list[str]:
        """Every feature the fields need, inputs before the features computed from them."""
        info = self.schema.schema_info()
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            if name in info.derived:
                for dep in info.derived[name].inputs:
                    visit(dep)
            order.append(name)

        wanted = {f.feature for f in self.fields}
        for name in info.names():
            if name in wanted:
                visit(name)
        return order

    def definitions(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The plan's raw and derived definitions this spec reaches."""
        info = self.schema.schema_info()
        reached = self.reached()
        raw = [info.raw[n].definition() for n in info.raw if n in reached]
        raw += [info.python[n].definition() for n in info.python if n in reached]
        derived = [info.derived[n].definition() for n in reached if n in info.derived]
        return raw, derived

    def model_definition(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "bits": self.bits,
            "fields": [f.definition() for f in self.fields],
            "fingerprint": self.fingerprint,
        }

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON of everything that decides the tokens."""
        raw, derived = self.definitions()
        payload = {
            "plan_version": PLAN_VERSION,
            "seed": self.seed,
            "bits": self.bits,
            "fields": [f.definition() for f in self.fields],
            "raw": raw,
            "derived": derived,
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def plan_json(self) -> str:
        """The plan of this one model, as `rust_core.FeaturePlan` takes it."""
        from features.plan import plan_json  # noqa: PLC0415 - plan imports this module

        return plan_json([self])

    def __repr__(self) -> str:
        return (
            f"ModelSpec({self.name!r}, {self.schema.__name__}, {len(self.fields)} fields, "
            f"bits={self.bits}, seed={self.seed}, algorithm={self.algorithm!r})"
        )
