"""`Clip`: a numeric feature held to a range, the same in training and serving (issue 12 #3)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from features import Clip, FeatureError, FeatureSchema, ModelSpec, candidate, numeric
from features.tokenize import plan_for, table_csr


class Bid(FeatureSchema):
    campaign: str = candidate(default="")
    price: float = candidate(default=1.0)
    price_clipped = Clip("price", 0.25, 21.0)


SPEC = ModelSpec("cvr", Bid, ["campaign", numeric("price_clipped")], bits=10, seed=3)
PRICES = [-1000.0, 0.25, 3.5, 21.0, 1000.0, 3.0e38]


def test_serving_and_training_clip_alike() -> None:
    served = plan_for(SPEC).tokenize_request(
        {}, [{"campaign": "c", "price": repr(p)} for p in PRICES], "cvr"
    )
    values = [float(row[2][1]) for row in served]
    assert values == [0.25, 0.25, 3.5, 21.0, 21.0, 21.0]
    table = pa.table({"campaign": ["c"] * len(PRICES), "price": PRICES, "click": [0, 1] * 3})
    _, _, _, trained = table_csr(table, SPEC)
    assert trained[1::2].tolist() == values
    assert [Bid.price_clipped.apply(p) for p in PRICES] == values


def test_clip_needs_an_ordered_finite_range() -> None:
    with pytest.raises(FeatureError, match="finite lo <= hi"):
        Clip("price", 2.0, 1.0)
    with pytest.raises(FeatureError, match="finite lo <= hi"):
        Clip("price", 0.0, float("inf"))
