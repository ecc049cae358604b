"""Training/serving skew, as a property: for random raw requests, the serving path (wire
strings -> tokens, and -> scores through `Scorer.score_request`) and the training path (the
same request as log rows in Parquet, read back by `read_logs`, tokenised to CSR) agree exactly,
for every built-in transform and for a Python property."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rust_core
from bidscore.v1 import scorer_pb2
from features import (
    Bucketize,
    Cross,
    FeatureSchema,
    LogBucket,
    ModelSpec,
    candidate,
    context,
    numeric,
)
from features.bid import BidRequest
from features.readers import read_logs
from features.tokenize import plan_for, python_values, table_csr, tokenize_table

_NUMERIC = {"ts", "bid_floor", "bid_price"}
_INFO = BidRequest.schema_info()
# Every feature of the real schema: 28 raw, every built-in transform, the Python property.
SKEW = ModelSpec(
    "skew",
    BidRequest,
    [numeric(n) if n in _NUMERIC else n for n in _INFO.names()],
    bits=20,
    seed=11,
    algorithm="lr",
)


class Odd(FeatureSchema):
    """Corners BidRequest does not reach: required fields, floats in crosses, int buckets."""

    n: int = context()
    x: float = candidate()
    s: str = candidate(default="dflt")
    mixed = Cross("x", "n", "s")
    n_bucket = Bucketize("n", [-10.0, 0.0, 2.5, 1e6])
    n_log = LogBucket("n", base=1.5)
    x_log = LogBucket("x", base=10.0)

    @property
    def x_sign(self) -> float:
        return -1.5 if self.x < 0 else 1.5


ODD = ModelSpec(
    "odd",
    Odd,
    ["n", "s", "mixed", "n_bucket", "n_log", "x_log", "x_sign", numeric("x")],
    bits=18,
    seed=5,
)

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
some_text = st.one_of(st.sampled_from(["", "iOS", " Android ", "ÉTÉ", "a^b", "Σ"]), text)
int_text = st.integers(-(2**63), 2**63 - 1).map(str)
float_text = st.one_of(
    # Values beyond the float32 range are refused by both paths (tested below), not tokenised.
    st.floats(min_value=-3.4e38, max_value=3.4e38, allow_nan=False).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.decimals(-1000, 1000, places=3, allow_nan=False, allow_infinity=False).map(str),
)
_STRATEGY = {"str": some_text, "int": int_text, "float": float_text}


def values_of(schema: type[FeatureSchema], source: str, required: bool) -> st.SearchStrategy:
    """A dict of wire strings: optional features may be absent (the default applies)."""
    raw = schema.schema_info().raw
    names = [n for n, f in raw.items() if f.source == source]
    draws: dict[str, st.SearchStrategy] = {}
    optional: dict[str, st.SearchStrategy] = {}
    for n in names:
        target = draws if raw[n].default is None and required else optional
        target[n] = _STRATEGY[raw[n].type]
    return st.fixed_dictionaries(draws, optional=optional)


def requests(schema: type[FeatureSchema]) -> st.SearchStrategy:
    return st.tuples(
        values_of(schema, "context", True),
        st.lists(values_of(schema, "candidate", True), min_size=1, max_size=4),
    )


def typed(schema: type[FeatureSchema], values: dict[str, str]) -> dict[str, Any]:
    kinds = {"str": str, "int": int, "float": float}
    raw = schema.schema_info().raw
    return {n: kinds[raw[n].type](v) for n, v in values.items()}


def log_table(
    schema: type[FeatureSchema], ctx: dict[str, str], cands: list[dict[str, str]]
) -> pa.Table:
    """The request as the bid logs store it: one typed row per candidate, nulls where absent."""
    raw = schema.schema_info().raw
    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}
    arrow = pa.schema([(n, types[f.type]) for n, f in raw.items()] + [("click", pa.int64())])
    rows = [{**typed(schema, ctx), **typed(schema, c), "click": 0} for c in cands]
    return pa.Table.from_pylist(rows, schema=arrow)


def through_parquet(schema: type[FeatureSchema], table: pa.Table) -> pa.Table:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs.parquet"
        pq.write_table(table, path)
        return read_logs(path, schema=schema)


def served_tokens(
    spec: ModelSpec, ctx: dict[str, str], cands: list[dict[str, str]]
) -> list[np.ndarray]:
    py = python_values(spec.schema, [spec], ctx, cands)
    rows = plan_for(spec).tokenize_request(ctx, cands, spec.name, py)
    return [np.concatenate([r[k] for r in rows]) for k in range(3)]


def assert_same_tokens(
    spec: ModelSpec, ctx: dict[str, str], cands: list[dict[str, str]]
) -> pa.Table:
    table = through_parquet(spec.schema, log_table(spec.schema, ctx, cands))
    indptr, fields, indices, values = table_csr(table, spec)
    served = served_tokens(spec, ctx, cands)
    width = len(spec.fields)
    assert indptr.tolist() == [i * width for i in range(len(cands) + 1)]
    np.testing.assert_array_equal(served[0], fields)
    np.testing.assert_array_equal(served[1], indices)
    np.testing.assert_array_equal(served[2], values)
    return table


@cache
def skew_scorer() -> tuple[rust_core.Scorer, rust_core.Model]:
    """A small LR model over the SKEW spec, its weights spread by a few training rows."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "app_id": f"app{i % 7}",
            "device_os": ["iOS", "Android"][i % 2],
            "ts": int(t),
            "bid_floor": float(f),
            "bid_price": float(p),
            "click": int(c),
        }
        for i, (t, f, p, c) in enumerate(
            zip(
                rng.integers(0, 10**9, 200),
                rng.uniform(0, 3, 200),
                rng.uniform(0, 9, 200),
                rng.integers(0, 2, 200),
                strict=True,
            )
        )
    ]
    table = log_table(BidRequest, {}, [{}]).schema.empty_table()
    table = pa.Table.from_pylist(rows, schema=table.schema)
    model = rust_core.train_lr(
        tokenize_table(table, SKEW, label="click"),
        epochs=3,
        bits=SKEW.bits,
        fingerprint=SKEW.fingerprint,
    )
    return rust_core.Scorer(plan_for(SKEW), {"skew": (model, "1")}), model


@given(requests(BidRequest))
def test_bid_request_serving_equals_training(request):
    ctx, cands = request
    table = assert_same_tokens(SKEW, ctx, cands)
    # Through the wire too: scores from the protobuf request equal offline scores.
    scorer, model = skew_scorer()
    wire = scorer_pb2.ScoreRequest(
        context=ctx,
        candidates=[scorer_pb2.Candidate(id=str(i), features=c) for i, c in enumerate(cands)],
    )
    py = python_values(BidRequest, [SKEW], ctx, cands)
    response = scorer_pb2.ScoreResponse.FromString(
        scorer.score_request(wire.SerializeToString(), py)
    )
    online = np.array([c.scores[0] for c in response.candidates], np.float32)
    offline = model.predict(tokenize_table(table, SKEW, label="click"))
    np.testing.assert_array_equal(online, offline)


@given(requests(Odd))
def test_odd_corners_serving_equals_training(request):
    ctx, cands = request
    assert_same_tokens(ODD, ctx, cands)


def test_values_beyond_float32_are_refused_by_both_paths() -> None:
    spec = ODD
    raw = spec.schema.schema_info().raw
    ctx = {n: "1" for n, f in raw.items() if f.source == "context" and f.default is None}
    cand = {n: "1" for n, f in raw.items() if f.source == "candidate" and f.default is None}
    cand["x"] = "1e39"
    with pytest.raises(ValueError, match="float32 range"):
        served_tokens(spec, ctx, [cand])
    with pytest.raises(ValueError, match="float32 range"):
        table_csr(through_parquet(spec.schema, log_table(spec.schema, ctx, [cand])), spec)
