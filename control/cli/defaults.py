"""`default_of(Settings, "field")`: a CLI option's default read from the dataclass that owns it,
so the value is written once (the dataclass) and the `--help` text cannot drift from it."""

from __future__ import annotations

import dataclasses
from typing import Any


def default_of(cls: type, name: str) -> Any:
    """The declared default of dataclass field `name` (not for default_factory fields)."""
    for field in dataclasses.fields(cls):
        if field.name == name:
            if field.default is dataclasses.MISSING:
                raise TypeError(f"{cls.__name__}.{name} has no plain default")
            return field.default
    raise TypeError(f"{cls.__name__} has no field {name!r}")
