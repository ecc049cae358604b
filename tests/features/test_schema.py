"""The schema API: typed raw fields, transforms, properties, construction and its errors."""

from __future__ import annotations

import pytest

from features import (
    Bucketize,
    Cross,
    DayOfWeek,
    FeatureError,
    FeatureSchema,
    HourOfDay,
    LogBucket,
    Lower,
    candidate,
    context,
)
from features.transforms import value_text


class Auction(FeatureSchema):
    ts: int = context(default=0)
    app_id: str = context(default="")
    floor: float = context(default=0.5)
    campaign: str = candidate()  # required
    price: float = candidate(default=0)

    hour = HourOfDay("ts")
    dow = DayOfWeek("ts")
    floor_b = Bucketize("floor", edges=[0.1, 1.0])
    price_log = LogBucket("price", base=2)
    app_lc = Lower("app_id")
    hour_app = Cross("hour", "app_lc")
    triple = Cross("campaign", "app_id", "ts")

    @property
    def is_house(self) -> int:
        return int(self.campaign.startswith("house-"))


def test_schema_info_lists_features_in_declaration_order():
    info = Auction.schema_info()
    assert list(info.raw) == ["ts", "app_id", "floor", "campaign", "price"]
    assert [info.raw[n].type for n in info.raw] == ["int", "str", "float", "str", "float"]
    assert list(info.derived) == [
        "hour",
        "dow",
        "floor_b",
        "price_log",
        "app_lc",
        "hour_app",
        "triple",
    ]
    assert list(info.python) == ["is_house"]
    assert info.python["is_house"].type == "int"
    assert info.raw["price"].default == 0.0
    assert isinstance(info.raw["price"].default, float)
    assert info.raw["campaign"].default is None


def test_sources_follow_inputs():
    info = Auction.schema_info()
    assert info.source_of("hour") == "context"
    assert info.source_of("hour_app") == "context"
    assert info.source_of("triple") == "candidate"
    assert info.source_of("is_house") == "candidate"
    assert info.type_of("hour_app") == "str"
    assert info.type_of("floor_b") == "int"


def test_instances_compute_every_feature_in_python():
    a = Auction(ts=1_700_000_000, app_id="Com.X", campaign="house-1", price=7.0)
    assert (a.hour, a.dow) == (22, 1)
    assert a.floor_b == 1  # default 0.5: one edge <= 0.5
    assert a.price_log == 3
    assert a.app_lc == "com.x"
    assert a.hour_app == "22^com.x"
    assert a.triple == "house-1^Com.X^1700000000"
    assert a.is_house == 1
    assert Auction.hour.inputs == ("ts",)


def test_from_dict_parses_wire_strings_and_ignores_other_keys():
    a = Auction.from_dict({"ts": "3600", "floor": "2", "campaign": "c", "request_id": "r"})
    assert a == Auction(ts=3600, floor=2.0, campaign="c")
    assert a.hour == 1
    assert "campaign='c'" in repr(a)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "missing required feature 'campaign'"),
        ({"campaign": "c", "ts": "noon"}, "Auction.ts: 'noon' does not parse as int"),
        ({"campaign": "c", "floor": "cheap"}, "Auction.floor: 'cheap' does not parse as float"),
        ({"campaign": 5}, "Auction.campaign: 5 does not parse as str"),
        ({"campaign": "c", "ts": True}, "does not parse as int"),
    ],
)
def test_construction_errors_name_the_feature(values, message):
    with pytest.raises(FeatureError, match=message):
        Auction.from_dict(values)


def test_unknown_keyword_is_refused():
    with pytest.raises(FeatureError, match=r"unknown raw features \['nope'\]"):
        Auction(campaign="c", nope=1)


def _define(body: dict[str, object], annotations: dict[str, object]) -> type:
    return type("Bad", (FeatureSchema,), {**body, "__annotations__": annotations})


@pytest.mark.parametrize(
    ("body", "annotations", "message"),
    [
        ({"x": context()}, {"x": bytes}, "Bad.x: type must be str, int or float"),
        ({"x": context(default="0")}, {"x": int}, "Bad.x: default '0' is not a int"),
        ({"x": context(default=1)}, {"x": str}, "default 1 is not a str"),
        ({"h": HourOfDay("ts")}, {}, "Bad.h: unknown input feature 'ts'"),
        (
            {"s": context(default=""), "h": HourOfDay("s")},
            {"s": str},
            "Bad.h: hour_of_day needs an int input, 's' is str",
        ),
        (
            {"s": context(default=""), "b": Bucketize("s", [1.0])},
            {"s": str},
            "needs a numeric input",
        ),
        (
            {"n": context(default=0), "l": Lower("n")},
            {"n": int},
            "lower needs a str input",
        ),
        (
            {"a": Cross("b", "b2"), "b": Lower("a"), "b2": Lower("a")},
            {},
            "cycle",
        ),
    ],
)
def test_bad_schemas_are_refused(body, annotations, message):
    with pytest.raises(FeatureError, match=message):
        _define(body, annotations)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Cross("a"), "takes 2..3 inputs"),
        (lambda: Cross("a", "b", "c", "d"), "takes 2..3 inputs"),
        (lambda: Bucketize("x", []), "non-empty"),
        (lambda: Bucketize("x", [1.0, 1.0]), "strictly increasing"),
        (lambda: Bucketize("x", [float("nan")]), "finite"),
        (lambda: LogBucket("x", base=1.0), "base must be"),
        (lambda: HourOfDay(""), "feature names"),
    ],
)
def test_bad_transform_parameters(make, message):
    with pytest.raises(FeatureError, match=message):
        make()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5, "1.5"),
        (0.1, "0.1"),
        (3.0, "3"),
        (1e20, "100000000000000000000"),
        (-0.0, "-0"),
        (1e-7, "0.0000001"),
        (12, "12"),
        ("x", "x"),
    ],
)
def test_value_text_matches_rust_display(value, text):
    assert value_text(value) == text
