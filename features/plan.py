"""Compile model specs into the plan JSON `rust_core.FeaturePlan` executes (format:
docs/architecture.md, "Feature plan"). Several specs share one plan, so that one request is
parsed once for every model a server scores."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from features.errors import FeatureError
from features.spec import PLAN_VERSION, ModelSpec


def build_plan(specs: Iterable[ModelSpec]) -> dict[str, Any]:
    """The plan dict of several specs; a feature that two specs define differently is an error."""
    raw: dict[str, dict[str, Any]] = {}
    derived: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.name in models:
            raise FeatureError(f"two specs are named {spec.name!r}")
        spec_raw, spec_derived = spec.definitions()
        for table, defs in ((raw, spec_raw), (derived, spec_derived)):
            for definition in defs:
                known = table.setdefault(definition["name"], definition)
                if known != definition:
                    raise FeatureError(
                        f"spec {spec.name}: feature {definition['name']!r} is defined "
                        "differently by another spec in the same plan"
                    )
        models[spec.name] = spec.model_definition()
    if not models:
        raise FeatureError("a plan needs at least one model spec")
    return {
        "version": PLAN_VERSION,
        "raw": list(raw.values()),
        "derived": list(derived.values()),
        "models": models,
    }


def plan_json(specs: Iterable[ModelSpec]) -> str:
    return json.dumps(build_plan(specs), sort_keys=True, separators=(",", ":"))
