"""Four models over the real schema, for bench/scale.py's models-per-request sweep.

ctr and cvr are the production specs; ctr_b and cvr_b are the same feature sets with other
hash seeds, standing in for a third and fourth model (win rate, viewability...). Servers load
them with `--specs bench.scale_specs:SPECS`.
"""

from __future__ import annotations

from features.bid import CTR, CVR
from features.spec import ModelSpec


def _twin(spec: ModelSpec, name: str, seed: int) -> ModelSpec:
    return ModelSpec(
        name, spec.schema, spec.fields, bits=spec.bits, seed=seed, algorithm=spec.algorithm
    )


SPECS: dict[str, ModelSpec] = {
    "ctr": CTR,
    "cvr": CVR,
    "ctr_b": _twin(CTR, "ctr_b", 101),
    "cvr_b": _twin(CVR, "cvr_b", 102),
}
