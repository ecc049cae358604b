"""The server's own feature code: the specs of the served models compiled into one plan.

The plan decides the tokens; its per-model fingerprints decide which model files this server
accepts (a model trained with other feature code is refused). The warm-up batch is built from
the schema itself, so it exercises every raw feature of every served model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import rust_core
from bidscore.v1 import scorer_pb2
from features import catalog
from features.plan import plan_json
from features.spec import ModelSpec
from pyserver.config import DEFAULT_MAX_CANDIDATES
from pyserver.errors import ConfigError, WarmupError
from pyserver.experiments import ServedExperiment, scorer_experiments
from pyserver.modelset import LoadedModel
from pyserver.python_features import PythonValues

WARMUP_CANDIDATES = 8


class ServingFeatures:
    def __init__(
        self,
        specs: Sequence[ModelSpec],
        *,
        max_candidates: int = DEFAULT_MAX_CANDIDATES,
        max_models: int | None = None,
    ) -> None:
        if not specs:
            raise ConfigError("no model specs to serve")
        schemas = {spec.schema for spec in specs}
        if len(schemas) != 1:
            raise ConfigError("every served model must share one feature schema")
        self.schema = schemas.pop()
        self.specs = {spec.name: spec for spec in specs}
        self.plan_json = plan_json(specs)
        self.plan = rust_core.FeaturePlan(self.plan_json)
        self.fingerprints = {spec.name: spec.fingerprint for spec in specs}
        info = self.schema.schema_info()
        # The keys a request may carry: everything else is an unknown feature.
        self.raw_names = frozenset(info.raw)
        # (name, source) of the numeric raw features: their values are range-checked.
        self.numeric_raw = tuple(
            (name, field.source)
            for name, field in info.raw.items()
            if field.type in ("int", "float")
        )
        reached = {name for spec in specs for name in spec.reached()}
        python_names = [name for name in info.python if name in reached]
        self.python_values = PythonValues(self.schema, python_names) if python_names else None
        self.max_candidates = max_candidates
        self.max_models = max_models
        self.warmup_candidates = min(WARMUP_CANDIDATES, max_candidates)
        self.warmup_request = _warmup_request(self.schema, list(self.specs), self.warmup_candidates)
        # Warm-up requests for subsets of the models (served while others have no alias yet).
        self._warmup_requests = {tuple(self.specs): self.warmup_request}

    @classmethod
    def for_models(
        cls,
        names: Sequence[str],
        specs_ref: str | None = None,
        max_candidates: int = DEFAULT_MAX_CANDIDATES,
        max_models: int | None = None,
    ) -> ServingFeatures:
        """The specs named by `--models` from the catalogue `specs_ref` (features.catalog)."""
        try:
            specs = catalog.load(specs_ref).specs
        except catalog.CatalogError as exc:
            raise ConfigError(str(exc)) from None
        unknown = [name for name in names if name not in specs]
        if unknown:
            raise ConfigError(
                f"unknown model(s) {', '.join(unknown)}:"
                f" {specs_ref or catalog.default_ref()} has {', '.join(sorted(specs))}"
            )
        return cls(
            [specs[name] for name in names], max_candidates=max_candidates, max_models=max_models
        )

    def build_scorer(
        self,
        loaded: Mapping[str, LoadedModel],
        experiments: Mapping[str, ServedExperiment] | None = None,
    ) -> rust_core.Scorer:
        return rust_core.Scorer(
            self.plan,
            {name: (entry.model, entry.version) for name, entry in loaded.items()},
            max_candidates=self.max_candidates,
            experiments=scorer_experiments(experiments) if experiments else None,
            max_models=self.max_models,
        )

    def python_request_values(self, request: bytes) -> dict[str, list[str | None]] | None:
        """The `@property` feature values of a serialized request (None without any)."""
        python = self.python_values
        return python.compute(python.parse(request)) if python is not None else None

    def score_bytes(self, scorer: rust_core.Scorer, request: bytes) -> bytes:
        """Score one serialized request as the service does (Python features included)."""
        return bytes(scorer.score_request(request, self.python_request_values(request)))

    def warm_up(self, scorer: rust_core.Scorer, models: Sequence[str] | None = None) -> None:
        """Score the warm-up batch with `models` (default: all); every model must give a
        probability per candidate.

        Touches the code paths and the model pages a first real request would, so that the
        first request after a swap is not the slow one.
        """
        key = tuple(self.specs) if models is None else tuple(models)
        if key not in self._warmup_requests:
            self._warmup_requests[key] = _warmup_request(
                self.schema, list(key), self.warmup_candidates
            )
        response = scorer_pb2.ScoreResponse.FromString(
            self.score_bytes(scorer, self._warmup_requests[key])
        )
        if len(response.candidates) != self.warmup_candidates:
            raise WarmupError(
                f"warm-up returned {len(response.candidates)} candidates, "
                f"expected {self.warmup_candidates}"
            )
        for cand in response.candidates:
            if len(cand.scores) != len(response.models):
                raise WarmupError("warm-up returned a candidate without a score per model")
            bad = [s for s in cand.scores if not (math.isfinite(s) and 0.0 <= s <= 1.0)]
            if bad:
                raise WarmupError(f"warm-up produced scores outside [0, 1]: {bad[:3]}")


def _sample_value(type_: str, default: object, index: int) -> str:
    if type_ == "int":
        return str(1_800_000_000 + 3_607 * index if default == 0 else index)
    if type_ == "float":
        return str(0.25 * (index + 1))
    return f"warmup-{index}"


def _warmup_request(schema: type, models: list[str], candidates: int) -> bytes:
    """A request with a value for every raw feature, varied per candidate."""
    info = schema.schema_info()  # type: ignore[attr-defined]
    request = scorer_pb2.ScoreRequest(request_id="warmup", models=models)
    for name, field in info.raw.items():
        if field.source == "context":
            request.context[name] = _sample_value(field.type, field.default, 0)
    for index in range(candidates):
        cand = request.candidates.add(id=f"warmup-{index}")
        for name, field in info.raw.items():
            if field.source == "candidate":
                cand.features[name] = _sample_value(field.type, field.default, index)
    return request.SerializeToString()
