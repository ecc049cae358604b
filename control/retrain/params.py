"""`--param NAME=VALUE` parsing and the run's idempotency key.

The key hashes the hyper-parameters, so overrides are kept canonical: numbers as numbers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bidscore.errors import BidscoreError


class ParamError(BidscoreError):
    """A `--param` that is not NAME=VALUE or names no hyper-parameter."""


def _number(text: str) -> int | float | bool | str:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text.strip()


def parse_overrides(items: Iterable[str], known: Iterable[str]) -> dict[str, Any]:
    """`["eta=5.0", "epochs=3"]` -> `{"eta": 5.0, "epochs": 3}`, names checked against `known`."""
    allowed = set(known)
    overrides: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise ParamError(f"--param must be NAME=VALUE, got {item!r}")
        if name not in allowed:
            raise ParamError(
                f"unknown hyper-parameter {name!r} in --param (known: {', '.join(sorted(allowed))})"
            )
        overrides[name] = _number(value)
    return overrides


def idempotency_key(
    model: str,
    fingerprint: str,
    partitions: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
) -> str:
    """model + feature spec + window (days, roles and row counts) + params, hashed.

    Row counts are part of it: a partition rewritten by a backfill is new data and deserves
    a new version; the same data under the same params is the same version.
    """
    window = [(p["day"], p["role"], p["rows"]) for p in partitions]
    canonical = json.dumps(
        {"model": model, "fingerprint": fingerprint, "window": window, "params": dict(params)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"retrain-{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"
