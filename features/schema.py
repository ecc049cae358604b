"""Feature schemas: typed raw inputs (from the request context or from an ad candidate) and the
derived features declared on them.

```python
class BidRequest(FeatureSchema):
    ts: int = context(default=0)
    campaign_id: str = candidate(default="")
    hour = HourOfDay("ts")                       # built-in transform: compiled to the Rust plan
    category_media = Cross("ad_category", "app_id")

    @property
    def os_family(self) -> str: ...              # escape hatch: runs in Python on both sides
```

Built-in transforms run in `rust_core` in training and in serving. A plain `@property` is
computed in Python, row by row in training and once per candidate in serving: slower, but the
same code on both sides. Its return annotation (`str`, `int` or `float`) is its declared type.
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from features.errors import FeatureError
from features.transforms import Transform

RawType = Literal["str", "int", "float"]
Source = Literal["context", "candidate", "derived_python"]

_PY_TYPES: dict[object, RawType] = {str: "str", int: "int", float: "float"}


class RawField:
    """A typed raw input; `default=None` means required (a missing value is an error)."""

    def __init__(self, source: Source, default: object) -> None:
        self.source: Source = source
        self.default = default
        self.name = ""
        self.type: RawType = "str"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        # Instances keep their values in __dict__, which shadows this non-data descriptor;
        # reaching here means class access, which returns the field itself for introspection.
        return self

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "source": self.source,
            "default": self.default,
        }


def context(*, default: Any = None) -> Any:
    """A raw feature from the request context (user, app, device, time): once per request."""
    return RawField("context", default)


def candidate(*, default: Any = None) -> Any:
    """A raw feature of one ad candidate (campaign, creative, advertiser): once per candidate."""
    return RawField("candidate", default)


@dataclass(frozen=True)
class PythonFeature:
    """A plain `@property` of the schema, declared as a `derived_python` raw input of the plan."""

    name: str
    type: RawType
    fget: Any
    code_sha256: str

    def definition(self) -> dict[str, Any]:
        # The code hash makes an edit of the property's source change every fingerprint that
        # reaches it, so a model trained with the old code is refused by a server with the new.
        return {
            "name": self.name,
            "type": self.type,
            "source": "derived_python",
            "default": "" if self.type == "str" else None,
            "code_sha256": self.code_sha256,
        }


@dataclass(frozen=True)
class SchemaInfo:
    """Every feature of a schema, in declaration order."""

    raw: dict[str, RawField]
    python: dict[str, PythonFeature]
    derived: dict[str, Transform]

    def type_of(self, name: str) -> RawType:
        if name in self.raw:
            return self.raw[name].type
        if name in self.python:
            return self.python[name].type
        if name in self.derived:
            return self.derived[name].output_type()
        raise FeatureError(f"unknown feature {name!r}")

    def source_of(self, name: str) -> Literal["context", "candidate"]:
        """Where a value varies: `candidate` if it depends on any candidate input."""
        if name in self.raw:
            return "candidate" if self.raw[name].source == "candidate" else "context"
        if name in self.python:
            return "candidate"
        sources = {self.source_of(i) for i in self.derived[name].inputs}
        return "candidate" if "candidate" in sources else "context"

    def names(self) -> list[str]:
        return [*self.raw, *self.python, *self.derived]


def _code_sha256(fget: Any) -> str:
    try:
        source = textwrap.dedent(inspect.getsource(fget))
    except (OSError, TypeError):
        source = getattr(fget, "__qualname__", repr(fget))
    return hashlib.sha256(source.encode()).hexdigest()


def _raw_type(owner: type, name: str, annotation: object) -> RawType:
    if annotation not in _PY_TYPES:
        raise FeatureError(f"{owner.__name__}.{name}: type must be str, int or float")
    return _PY_TYPES[annotation]


def _check_default(owner: type, field: RawField) -> None:
    default = field.default
    if default is None:
        return
    ok = {
        "str": isinstance(default, str),
        "int": isinstance(default, int) and not isinstance(default, bool),
        "float": isinstance(default, int | float) and not isinstance(default, bool),
    }[field.type]
    if not ok:
        raise FeatureError(
            f"{owner.__name__}.{field.name}: default {default!r} is not a {field.type}"
        )
    if field.type == "float" and isinstance(default, int | float):
        field.default = float(default)


def _collect(cls: type) -> SchemaInfo:
    hints = typing.get_type_hints(cls)
    raw: dict[str, RawField] = {}
    python: dict[str, PythonFeature] = {}
    derived: dict[str, Transform] = {}
    for klass in reversed(cls.__mro__):
        for name, attr in vars(klass).items():
            if isinstance(attr, RawField):
                attr.type = _raw_type(cls, name, hints.get(name))
                _check_default(cls, attr)
                raw[name] = attr
            elif isinstance(attr, Transform):
                derived[name] = attr
            elif isinstance(attr, property) and klass is not FeatureSchema:
                ret = typing.get_type_hints(attr.fget).get("return", str)
                python[name] = PythonFeature(
                    name, _raw_type(cls, name, ret), attr.fget, _code_sha256(attr.fget)
                )
    info = SchemaInfo(raw, python, derived)
    for name, transform in derived.items():
        for dep in transform.inputs:
            if dep not in raw and dep not in python and dep not in derived:
                raise FeatureError(f"{cls.__name__}.{name}: unknown input feature {dep!r}")
    _check_acyclic(cls, info)
    for name, transform in derived.items():
        try:
            transform.check_inputs([info.type_of(i) for i in transform.inputs])
        except FeatureError as exc:
            raise FeatureError(f"{cls.__name__}.{name}: {exc}") from None
    return info


def _check_acyclic(cls: type, info: SchemaInfo) -> None:
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) == 2 or name not in info.derived:
            return
        if state.get(name) == 1:
            raise FeatureError(f"{cls.__name__}.{name}: derived features form a cycle")
        state[name] = 1
        for dep in info.derived[name].inputs:
            visit(dep)
        state[name] = 2

    for name in info.derived:
        visit(name)


def _coerce(owner: str, field: RawField, value: object) -> object:
    """Cast a value (typed, or a wire string) to the field's type."""
    try:
        if field.type == "str":
            if not isinstance(value, str):
                raise TypeError
            return value
        if field.type == "int":
            if isinstance(value, bool):
                raise TypeError
            return int(value) if isinstance(value, int | str) else _int_from_float(value)
        if isinstance(value, bool):
            raise TypeError
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FeatureError(
            f"{owner}.{field.name}: {value!r} does not parse as {field.type}"
        ) from None


def _int_from_float(value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError


class FeatureSchema:
    """Base class of feature schemas; subclasses declare raw fields, transforms, properties."""

    __features__: ClassVar[SchemaInfo]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__features__ = _collect(cls)

    def __init__(self, **values: Any) -> None:
        info = type(self).__features__
        unknown = set(values) - set(info.raw)
        if unknown:
            raise FeatureError(f"{type(self).__name__}: unknown raw features {sorted(unknown)}")
        for name, field in info.raw.items():
            value = values.get(name)
            if value is None:
                if field.default is None:
                    raise FeatureError(f"{type(self).__name__}: missing required feature {name!r}")
                value = field.default
            self.__dict__[name] = _coerce(type(self).__name__, field, value)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> typing.Self:
        """Build from a mapping such as a wire request (strings); keys not in the schema are
        ignored, as the server ignores them."""
        raw = cls.__features__.raw
        return cls(**{k: v for k, v in values.items() if k in raw})

    @classmethod
    def schema_info(cls) -> SchemaInfo:
        return cls.__features__

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={self.__dict__[k]!r}" for k in type(self).__features__.raw)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]
