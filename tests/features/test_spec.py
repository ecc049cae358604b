"""Model specs: validation, the plan JSON, and the fingerprint (docs/architecture.md)."""

from __future__ import annotations

import hashlib
import json

import pytest

from features import (
    Bucketize,
    Cross,
    DayOfWeek,
    FeatureError,
    FeatureSchema,
    HourOfDay,
    ModelSpec,
    candidate,
    categorical,
    context,
    numeric,
)
from features.plan import build_plan, plan_json


class Req(FeatureSchema):
    ts: int = context(default=0)
    app: str = context(default="")
    floor: float = context(default=0.0)
    ad: str = candidate(default="")
    hour = HourOfDay("ts")
    floor_b = Bucketize("floor", [0.5, 1.0])
    ad_hour = Cross("ad", "hour")

    @property
    def app_len(self) -> int:
        return len(self.app)


def spec(schema: type[FeatureSchema] = Req, **overrides: object) -> ModelSpec:
    args: dict[str, object] = {
        "fields": ["app", "ad_hour", numeric("floor"), "floor_b"],
        "bits": 12,
        "seed": 3,
    }
    args.update(overrides)
    return ModelSpec("m", schema, **args)  # type: ignore[arg-type]


def test_fingerprint_is_sha256_of_the_canonical_definition():
    s = spec()
    payload = {
        "plan_version": 1,
        "seed": 3,
        "bits": 12,
        "fields": [
            {"feature": "app", "kind": "categorical"},
            {"feature": "ad_hour", "kind": "categorical"},
            {"feature": "floor", "kind": "numeric"},
            {"feature": "floor_b", "kind": "categorical"},
        ],
        "raw": [
            {"name": "ts", "type": "int", "source": "context", "default": 0},
            {"name": "app", "type": "str", "source": "context", "default": ""},
            {"name": "floor", "type": "float", "source": "context", "default": 0.0},
            {"name": "ad", "type": "str", "source": "candidate", "default": ""},
        ],
        # Reached features in declaration order, each after its inputs.
        "derived": [
            {
                "name": "floor_b",
                "op": "bucketize",
                "inputs": ["floor"],
                "params": {"edges": [0.5, 1.0]},
            },
            {"name": "hour", "op": "hour_of_day", "inputs": ["ts"], "params": {}},
            {"name": "ad_hour", "op": "cross", "inputs": ["ad", "hour"], "params": {}},
        ],
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    assert s.fingerprint == hashlib.sha256(canonical.encode()).hexdigest()
    # Pinned: a change here means every stored model is refused; bump PLAN_VERSION instead.
    assert s.fingerprint == "778df892d5978caa02d73fe368bd3d3b3614086178528bf1f476e76bc05c063e"


def _variant(name: str, **attrs: object) -> type[FeatureSchema]:
    annotations = {"ts": int, "app": str, "floor": float, "ad": str}
    body: dict[str, object] = {
        "ts": context(default=0),
        "app": context(default=""),
        "floor": context(default=0.0),
        "ad": candidate(default=""),
        "hour": HourOfDay("ts"),
        "floor_b": Bucketize("floor", [0.5, 1.0]),
        "ad_hour": Cross("ad", "hour"),
        "__annotations__": annotations,
    }
    body.update(attrs)
    return type(name, (FeatureSchema,), body)


def test_fingerprint_is_the_same_for_the_same_definitions():
    assert spec(_variant("Same")).fingerprint == spec().fingerprint
    # A feature no field reaches does not count.
    unrelated = _variant("Extra", dow=DayOfWeek("ts"))
    assert spec(unrelated).fingerprint == spec().fingerprint


@pytest.mark.parametrize(
    "changed",
    [
        lambda: spec(_variant("Edges", floor_b=Bucketize("floor", [0.5, 2.0]))),
        lambda: spec(_variant("Op", hour=DayOfWeek("ts"))),
        lambda: spec(_variant("Inputs", ad_hour=Cross("hour", "ad"))),
        lambda: spec(_variant("Default", app=context(default="none"))),
        lambda: spec(_variant("Source", ad=context(default=""))),
        lambda: spec(fields=["app", "ad_hour", numeric("floor")]),
        lambda: spec(fields=["ad_hour", "app", numeric("floor"), "floor_b"]),
        lambda: spec(fields=["app", "ad_hour", categorical("floor"), "floor_b"]),
        lambda: spec(seed=4),
        lambda: spec(bits=13),
    ],
    ids=[
        "edges",
        "op",
        "inputs",
        "default",
        "source",
        "fewer-fields",
        "field-order",
        "field-kind",
        "seed",
        "bits",
    ],
)
def test_fingerprint_changes_with_anything_that_changes_tokens(changed):
    assert changed().fingerprint != spec().fingerprint


def test_fingerprint_covers_python_property_code():
    def app_len_v2(self: FeatureSchema) -> int:
        return len(self.app) + 1  # type: ignore[attr-defined]

    base = spec(fields=["app_len"])
    edited = spec(_variant("Edited", app_len=property(app_len_v2)), fields=["app_len"])
    assert edited.fingerprint != base.fingerprint
    assert base.definitions()[0] == [Req.schema_info().python["app_len"].definition()]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fields": []}, "no fields"),
        ({"fields": ["app", "app"]}, "listed twice"),
        ({"fields": ["nope"]}, "Req has no feature 'nope'"),
        ({"fields": [numeric("app")]}, "numeric field 'app' is a str feature"),
        ({"bits": 0}, "bits must be in 1..30"),
        ({"bits": 31}, "bits must be in 1..30"),
        ({"seed": -1}, "seed must be"),
        ({"algorithm": "gbdt"}, "algorithm must be"),
    ],
)
def test_bad_specs_are_refused(overrides, message):
    with pytest.raises(FeatureError, match=message):
        spec(**overrides)


def test_plan_json_holds_what_the_fields_reach_in_dependency_order():
    plan = json.loads(spec().plan_json())
    assert plan["version"] == 1
    assert [r["name"] for r in plan["raw"]] == ["ts", "app", "floor", "ad"]
    assert [d["name"] for d in plan["derived"]] == ["floor_b", "hour", "ad_hour"]
    model = plan["models"]["m"]
    assert model["fingerprint"] == spec().fingerprint
    assert (model["seed"], model["bits"], len(model["fields"])) == (3, 12, 4)


def test_specs_share_one_plan_and_conflicts_are_refused():
    a = spec()
    b = ModelSpec("n", Req, ["app_len", "hour"], bits=8, seed=1, algorithm="lr")
    plan = build_plan([a, b])
    assert sorted(plan["models"]) == ["m", "n"]
    assert [r["name"] for r in plan["raw"]].count("app") == 1
    assert "app_len" in [r["name"] for r in plan["raw"]]
    other = ModelSpec("n", _variant("Other", hour=DayOfWeek("ts")), ["hour"], bits=8, seed=1)
    with pytest.raises(FeatureError, match="'hour' is defined differently"):
        build_plan([a, other])
    with pytest.raises(FeatureError, match="two specs are named 'm'"):
        plan_json([a, a])
    with pytest.raises(FeatureError, match="at least one"):
        build_plan([])
