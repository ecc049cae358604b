from __future__ import annotations

import grpc
import pytest

from bidscore.v1 import scorer_pb2
from control import datagen
from features.bid import BidRequest
from features.schema import FeatureSchema, candidate, context
from pyserver.errors import RequestError
from pyserver.python_features import PythonValues


def _request(payload: dict) -> scorer_pb2.ScoreRequest:
    request = scorer_pb2.ScoreRequest(request_id=payload["request_id"])
    request.context.update(payload["context"])
    for cand in payload["candidates"]:
        request.candidates.add(id=cand["id"]).features.update(cand["features"])
    return request


def test_matches_the_property_on_a_full_schema_instance() -> None:
    values = PythonValues(BidRequest, ["os_family"])
    for payload in datagen.request_payloads(5, seed=3, candidates=4):
        request = _request(payload)
        got = values.compute(values.parse(request.SerializeToString()))
        expected = [
            BidRequest.from_dict({**payload["context"], **cand["features"]}).os_family
            for cand in payload["candidates"]
        ]
        assert got == {"os_family": expected}


class Priced(FeatureSchema):
    country: str = context(default="")
    price: float = candidate(default=None)  # required

    @property
    def premium(self) -> str:
        return f"{self.country}:{'hi' if self.price > 1 else 'lo'}"


def test_reads_candidate_then_context_with_types_and_defaults() -> None:
    values = PythonValues(Priced, ["premium"])
    request = scorer_pb2.ScoreRequest()
    request.context["country"] = "fr"
    request.candidates.add(id="a").features["price"] = "2.5"
    request.candidates.add(id="b").features["price"] = "0.5"
    assert values.compute(request) == {"premium": ["fr:hi", "fr:lo"]}


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({}, "candidate 0 ('a'): missing required feature 'price'"),
        (
            {"price": "cheap"},
            "candidate 0 ('a'): feature 'price' value 'cheap' does not parse as float",
        ),
    ],
)
def test_bad_values_are_invalid_argument(features: dict[str, str], message: str) -> None:
    values = PythonValues(Priced, ["premium"])
    request = scorer_pb2.ScoreRequest()
    request.candidates.add(id="a").features.update(features)
    with pytest.raises(RequestError) as info:
        values.compute(request)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message == message


def test_invalid_utf8_is_invalid_argument() -> None:
    # context entry {"app_id": b"\xff"}: field 2 (map entry) holding key (1) and value (2)
    entry = b"\x0a\x06app_id" + b"\x12\x01\xff"
    with pytest.raises(RequestError) as info:
        PythonValues.parse(b"\x12" + bytes([len(entry)]) + entry)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
