"""The model catalogue: which feature specs (and training targets) a deployment uses.

Training, promotion, retraining, monitoring and the server all find their specs here, by one
reference `module:attribute`, so a second schema can be trained and served alike:

```python
catalog = features.catalog.load()                  # $BIDSCORE_SPECS, else features.bid:CATALOG
catalog = features.catalog.load("myteam.specs:CATALOG")
spec, target = catalog.spec("ctr"), catalog.target("ctr")
```

The attribute is a `Catalog`, or a plain dict of `ModelSpec` (then every model learns the
`click` label unless the dict's models are given targets through a `Catalog`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from features.errors import FeatureError
from features.spec import ModelSpec, Target

SPECS_ENV = "BIDSCORE_SPECS"
DEFAULT_REF = "features.bid:CATALOG"
DEFAULT_TARGET = Target(label="click")


class CatalogError(FeatureError):
    """A catalogue reference that cannot be loaded, or a model it does not define."""


@dataclass(frozen=True)
class Catalog:
    """Model name -> spec, and model name -> what it learns (default: the click label)."""

    specs: Mapping[str, ModelSpec]
    targets: Mapping[str, Target] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.targets) - set(self.specs))
        if unknown:
            raise CatalogError(f"targets name models without a spec: {', '.join(unknown)}")

    @property
    def names(self) -> list[str]:
        return sorted(self.specs)

    def spec(self, model: str) -> ModelSpec:
        try:
            return self.specs[model]
        except KeyError:
            known = ", ".join(self.names) or "none"
            raise CatalogError(f"unknown model {model!r} (the catalogue has: {known})") from None

    def target(self, model: str) -> Target:
        self.spec(model)
        return self.targets.get(model, DEFAULT_TARGET)


def default_ref() -> str:
    """`$BIDSCORE_SPECS`, else the bundled bid-request catalogue."""
    return os.environ.get(SPECS_ENV) or DEFAULT_REF


def load(ref: str | None = None) -> Catalog:
    """Import `module:attribute` (default `default_ref()`): a Catalog or a dict of ModelSpec."""
    ref = ref or default_ref()
    module_name, sep, attribute = ref.partition(":")
    if not sep or not module_name or not attribute:
        raise CatalogError(f"specs must look like module:attribute, got {ref!r}")
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise CatalogError(f"cannot load specs {ref!r}: {exc}") from exc
    if isinstance(value, Catalog):
        return value
    if isinstance(value, Mapping) and all(isinstance(s, ModelSpec) for s in value.values()):
        return Catalog(dict(value))
    raise CatalogError(f"{ref} is neither a features.catalog.Catalog nor a dict of ModelSpec")
