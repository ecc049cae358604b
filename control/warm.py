"""Warm start: train from a registered version's weights (`control train --warm-start`,
`control retrain --warm-start`).

The parent is a version number or an alias (`production`). Its artifact is fetched and
verified like any other (checksum, format, and the fingerprint the running feature code
computes), then checked against what is about to be trained: algorithm, hash bits, k and
spec fingerprint must match, or the warm start is refused with one line. `rust_core` checks
the shape again (fields, stride, normalisation) when training starts. The model file keeps
no optimiser state, so AdaGrad / FTRL accumulators start fresh (see rust_core's train
module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rust_core
from bidscore.errors import IntegrityError, NotFoundError
from bidscore.registry import Registry, Version
from bidscore.store import ArtifactStore
from control.errors import WarmStartError
from control.promotion import fetch_and_verify
from features.catalog import Catalog
from features.spec import ModelSpec


def resolve_parent(registry: Registry, model: str, ref: str) -> Version:
    """The version `ref` names: a version number, or an alias such as `production`."""
    ref = ref.strip()
    if not ref:
        raise WarmStartError("--warm-start needs a version number or an alias (production)")
    try:
        if ref.isdigit():
            return registry.get_version(model, ref)
        alias = registry.get_alias(model, ref)
        if alias is None:
            raise WarmStartError(f"cannot warm-start {model}: it has no {ref} version")
        return registry.get_version(model, alias.version)
    except NotFoundError as exc:
        raise WarmStartError(f"cannot warm-start {model} from {ref}: {exc}") from None


def check_compatible(
    parent: rust_core.Model, label: str, spec: ModelSpec, algo: str, hyper: dict[str, Any]
) -> None:
    """Refuse (one line) a parent whose algorithm, hash bits, k or spec fingerprint differ
    from the training about to run."""
    wanted: list[tuple[str, object, object]] = [
        ("algorithm", parent.algorithm, algo),
        ("hash bits", parent.hash_bits, spec.bits),
        ("feature-spec fingerprint", parent.fingerprint, spec.fingerprint),
    ]
    if algo == "ffm":
        wanted.append(("k", parent.k, int(hyper["k"])))
        wanted.append(("normalize", parent.normalize, bool(hyper["normalize"])))
    for name, theirs, ours in wanted:
        if theirs != ours:
            raise WarmStartError(
                f"cannot warm-start from {label}: its {name} is {theirs}, this training's {ours}"
            )


def load_parent(
    registry: Registry,
    store: ArtifactStore,
    model: str,
    ref: str,
    workdir: Path,
    *,
    catalog: Catalog | None = None,
) -> tuple[rust_core.Model, Version]:
    """The verified model of the version `ref` names, and that version."""
    version = resolve_parent(registry, model, ref)
    try:
        parent = fetch_and_verify(store, version, workdir, catalog)
    except IntegrityError as exc:
        raise WarmStartError(f"cannot warm-start from {exc}") from None
    return parent, version
