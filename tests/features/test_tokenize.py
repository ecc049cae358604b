"""`features.tokenize` and `rust_core.FeaturePlan`/`Scorer`: the token contract, Arrow layouts,
defaults, errors naming column and row (training) or model, candidate and feature (serving)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest
import xxhash

import rust_core
from bidscore.v1 import scorer_pb2
from features import (
    Bucketize,
    Cross,
    DayOfWeek,
    FeatureError,
    FeatureSchema,
    HourOfDay,
    LogBucket,
    Lower,
    ModelSpec,
    candidate,
    context,
    numeric,
)
from features.tokenize import plan_for, python_values, table_csr, tokenize_table


class Ad(FeatureSchema):
    ts: int = context(default=0)
    app: str = context(default="unknown")
    floor: float = context()  # required
    campaign: str = candidate(default="")
    price: float = candidate(default=1.0)
    hour = HourOfDay("ts")
    dow = DayOfWeek("ts")
    floor_b = Bucketize("floor", [0.5, 1.0])
    price_log = LogBucket("price", base=2.0)
    app_lc = Lower("app")
    app_campaign = Cross("app_lc", "campaign")

    @property
    def campaign_len(self) -> int:
        return len(self.campaign)


SPEC = ModelSpec(
    "ctr",
    Ad,
    [
        "app_lc",
        "hour",
        "dow",
        "floor_b",
        "price_log",
        "app_campaign",
        numeric("floor"),
        "campaign_len",
    ],
    bits=16,
    seed=9,
)
NATIVE = ModelSpec(
    "cvr", Ad, ["app", "campaign", numeric("price")], bits=10, seed=4, algorithm="lr"
)


def bucket(token: str, spec: ModelSpec = SPEC) -> int:
    """The documented hash, computed independently of rust_core."""
    return xxhash.xxh3_64_intdigest(token.encode(), seed=spec.seed) & ((1 << spec.bits) - 1)


def expected_row(app: str, ts: int, floor: float, campaign: str, price: float) -> list[int]:
    a = Ad(ts=ts, app=app, floor=floor, campaign=campaign, price=price)
    return [
        bucket(f"app_lc={a.app_lc}"),
        bucket(f"hour={a.hour}"),
        bucket(f"dow={a.dow}"),
        bucket(f"floor_b={a.floor_b}"),
        bucket(f"price_log={a.price_log}"),
        bucket(f"app_campaign={a.app_campaign}"),
        bucket("floor"),
        bucket(f"campaign_len={len(campaign)}"),
    ]


TABLE = pa.table(
    {
        "ts": pa.array([7200, None, -1], pa.int64()),
        "app": pa.array(["Com.A", None, "ÉTÉ"], pa.string()),
        "floor": pa.array([0.5, 2.0, 0.1], pa.float64()),
        "campaign": pa.array(["c1", "c22", None], pa.string()),
        "price": pa.array([3.0, None, 0.0], pa.float64()),
        "click": pa.array([1, 0, 0], pa.int64()),
        "weight": pa.array([1.0, 2.0, 2.0], pa.float64()),
    }
)


def test_training_tokens_follow_the_contract():
    indptr, fields, indices, values = table_csr(TABLE, SPEC)
    assert indptr.tolist() == [0, 8, 16, 24]
    assert fields.tolist() == list(range(8)) * 3
    assert indices[0:8].tolist() == expected_row("Com.A", 7200, 0.5, "c1", 3.0)
    # nulls take the defaults: ts 0, app "unknown", price 1.0; campaign ""
    assert indices[8:16].tolist() == expected_row("unknown", 0, 2.0, "c22", 1.0)
    assert indices[16:24].tolist() == expected_row("ÉTÉ", -1, 0.1, "", 0.0)
    assert values.tolist() == [1, 1, 1, 1, 1, 1, 0.5, 1] + [1] * 6 + [2.0, 1] + [1] * 6 + [
        np.float32(0.1),
        1,
    ]


def test_tokenize_table_carries_labels_and_weights():
    dataset = tokenize_table(TABLE, SPEC, label="click", weights="weight")
    assert dataset.num_rows == 3
    assert dataset.labels.tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(FeatureError, match="column nope is missing"):
        tokenize_table(TABLE, SPEC, label="nope")


@pytest.mark.parametrize(
    "layout",
    ["large_string", "chunked", "sliced", "dictionary", "int_floor"],
)
def test_arrow_layouts_give_the_same_tokens(layout):
    table = TABLE
    if layout == "large_string":
        table = table.set_column(1, "app", table["app"].cast(pa.large_string()))
    elif layout == "chunked":
        table = pa.concat_tables([table.slice(0, 1), table.slice(1, 2)])
        assert table["app"].num_chunks == 2
    elif layout == "sliced":
        padded = pa.concat_tables([TABLE.slice(2, 1), TABLE]).combine_chunks()
        table = padded.slice(1)
    elif layout == "dictionary":
        table = table.set_column(1, "app", table["app"].dictionary_encode())
    elif layout == "int_floor":
        table = table.set_column(2, "floor", pa.array([1, 2, 0], pa.int64()))
        expected = table_csr(TABLE.set_column(2, "floor", pa.array([1.0, 2.0, 0.0])), SPEC)
        assert all(
            np.array_equal(a, b) for a, b in zip(table_csr(table, SPEC), expected, strict=True)
        )
        return
    got = table_csr(table, SPEC)
    want = table_csr(TABLE, SPEC)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_training_errors_name_column_and_row():
    native = ModelSpec("ctr", Ad, SPEC.fields[:-1], bits=16, seed=9)  # no Python property
    missing = TABLE.set_column(2, "floor", pa.array([0.5, None, 0.1], pa.float64()))
    with pytest.raises(rust_core.DataError, match="column floor, row 2: missing required value"):
        table_csr(missing, native)
    # With a Python property, Python meets the row first and says the same.
    with pytest.raises(FeatureError, match="row 2: Ad: missing required feature 'floor'"):
        table_csr(missing, SPEC)
    nan = TABLE.set_column(2, "floor", pa.array([0.5, 1.0, float("nan")]))
    with pytest.raises(rust_core.DataError, match='column floor, row 3: "NaN" is not a finite'):
        table_csr(nan, native)
    with pytest.raises(rust_core.DataError, match=r"column floor is missing \(model ctr needs"):
        table_csr(TABLE.drop_columns(["floor"]), native)
    text = TABLE.set_column(0, "ts", pa.array(["1", "x", "2"]))
    with pytest.raises(FeatureError, match="column ts: cannot read string as int"):
        table_csr(text, SPEC)


def test_serving_tokens_equal_training_tokens():
    plan = plan_for(SPEC)
    rows = TABLE.to_pylist()
    context = {"ts": "7200", "app": "Com.A", "floor": "0.5"}
    candidates = [{"campaign": "c1", "price": "3"}, {"campaign": "c22"}]
    py = python_values(Ad, [SPEC], context, candidates)
    assert py == {"campaign_len": ["2", "3"]}
    served = plan.tokenize_request(context, candidates, "ctr", py)
    table = pa.Table.from_pylist(
        [{**rows[0]}, {**rows[0], "campaign": "c22", "price": None}], schema=TABLE.schema
    )
    _, fields, indices, values = table_csr(table, SPEC)
    assert np.concatenate([s[0] for s in served]).tolist() == fields.tolist()
    assert np.concatenate([s[1] for s in served]).tolist() == indices.tolist()
    assert np.concatenate([s[2] for s in served]).tolist() == values.tolist()


def test_wire_requests_tokenise_like_dicts():
    context = {"ts": "7200", "app": "Com.A", "floor": "0.5", "unused": "x"}
    candidates = [{"campaign": "c1", "price": "3"}, {"campaign": "c22"}]
    wire = scorer_pb2.ScoreRequest(
        context=context,
        candidates=[scorer_pb2.Candidate(id=str(i), features=c) for i, c in enumerate(candidates)],
    ).SerializeToString()
    py = python_values(Ad, [SPEC], context, candidates)
    indptr, fields, indices, values = plan_for(SPEC).tokenize_wire(wire, "ctr", py)
    rows = plan_for(SPEC).tokenize_request(context, candidates, "ctr", py)
    assert indptr.tolist() == [0, 8, 16]
    assert fields.tolist() == np.concatenate([r[0] for r in rows]).tolist()
    assert indices.tolist() == np.concatenate([r[1] for r in rows]).tolist()
    assert values.tolist() == np.concatenate([r[2] for r in rows]).tolist()
    with pytest.raises(rust_core.ScoreError, match="malformed ScoreRequest"):
        plan_for(SPEC).tokenize_wire(wire[:-3], "ctr", py)


def test_serving_errors_are_score_errors_naming_model_candidate_feature():
    plan = plan_for(NATIVE)
    with pytest.raises(rust_core.ScoreError) as info:
        plan.tokenize_request({"floor": "1"}, [{"price": "1"}, {"price": "free"}], "cvr")
    assert info.value.code == "INVALID_ARGUMENT"
    assert info.value.message == (
        'model cvr, candidate #1, feature price: "free" does not parse as float'
    )
    with pytest.raises(rust_core.ScoreError, match="not in the feature plan") as info:
        plan.tokenize_request({}, [{}], "ctr")
    assert info.value.code == "NOT_FOUND"
    with pytest.raises(ValueError, match="campaign_len is a Python property"):
        plan_for(SPEC).tokenize_request({"floor": "1"}, [{}], "ctr")


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ("{", "feature plan"),
        ('{"version": 2, "raw": [], "derived": [], "models": {}}', "version 2"),
    ],
)
def test_bad_plans_are_value_errors(plan, message):
    with pytest.raises(ValueError, match=message):
        rust_core.FeaturePlan(plan)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (("str", np.zeros(2, np.int32)), '2 items for kind "str"'),
        (("int", np.zeros(3, np.float32), None), "not a 1-d int64"),
        (("bytes", np.zeros(3), None), "unknown kind"),
        (("str", np.array([0, 9, 9, 9], np.int32), np.zeros(2, np.uint8), None), "exceed"),
        (("str", np.array([0, 1], np.int32), np.zeros(1, np.uint8), None), "1 rows, expected 3"),
        (("int", np.zeros(3, np.int64), None), "column app: is int, the feature is str"),
    ],
)
def test_malformed_columns_are_refused(column, message):
    plan = plan_for(NATIVE)
    columns = {"app": column, "price": ("float", np.ones(3), None)}
    with pytest.raises((ValueError, rust_core.DataError), match=message):
        plan.tokenize_columns_csr(columns, 3, "cvr")


# ---- Scorer -----------------------------------------------------------------------------


def train(spec: ModelSpec, table: pa.Table, **kwargs: object) -> rust_core.Model:
    data = tokenize_table(table, spec, label="click")
    trainer = rust_core.train_lr if spec.algorithm == "lr" else rust_core.train_ffm
    return trainer(data, epochs=2, bits=spec.bits, fingerprint=spec.fingerprint, **kwargs)


def logs(n: int) -> pa.Table:
    rng = np.random.default_rng(3)
    return pa.table(
        {
            "ts": rng.integers(0, 10**9, n),
            "app": rng.choice(["a", "b", "c"], n),
            "floor": rng.uniform(0, 2, n),
            "campaign": rng.choice(["x", "y"], n),
            "price": rng.uniform(0, 5, n),
            "click": rng.integers(0, 2, n),
        }
    )


FFM_SPEC = ModelSpec(
    "ctr", Ad, ["app_lc", "hour", "app_campaign", numeric("floor")], bits=12, seed=1
)


def test_scorer_matches_offline_scores_for_lr_and_ffm_in_one_call():
    table = logs(64)
    ctr, cvr = train(FFM_SPEC, table, k=2), train(NATIVE, table)
    scorer = rust_core.Scorer(plan_for([FFM_SPEC, NATIVE]), {"ctr": (ctr, "7"), "cvr": (cvr, "2")})
    assert scorer.models == [("ctr", "7"), ("cvr", "2")]
    head = table.slice(0, 5)
    rows = head.to_pylist()
    context = {"ts": str(rows[0]["ts"]), "app": rows[0]["app"], "floor": repr(rows[0]["floor"])}
    same_context = pa.Table.from_pylist(
        [{**r, "ts": rows[0]["ts"], "app": rows[0]["app"], "floor": rows[0]["floor"]} for r in rows]
    )
    request = scorer_pb2.ScoreRequest(
        request_id="q",
        context=context,
        candidates=[
            scorer_pb2.Candidate(
                id=f"c{i}", features={"campaign": r["campaign"], "price": repr(r["price"])}
            )
            for i, r in enumerate(rows)
        ],
        models=["cvr", "ctr"],
    )
    response = scorer_pb2.ScoreResponse.FromString(
        scorer.score_request(request.SerializeToString())
    )
    assert [(m.name, m.version) for m in response.models] == [("cvr", "2"), ("ctr", "7")]
    assert [c.id for c in response.candidates] == [f"c{i}" for i in range(5)]
    online = np.array([list(c.scores) for c in response.candidates], np.float32)
    offline_cvr = cvr.predict(tokenize_table(same_context, NATIVE, label="click"))
    offline_ctr = ctr.predict(tokenize_table(same_context, FFM_SPEC, label="click"))
    np.testing.assert_allclose(online[:, 0], offline_cvr, rtol=1e-6)
    np.testing.assert_allclose(online[:, 1], offline_ctr, rtol=1e-6)
    direct = scorer.score(context, [dict(c.features) for c in request.candidates], ["ctr"])
    assert direct.shape == (5, 1)
    np.testing.assert_allclose(direct[:, 0], offline_ctr, rtol=1e-6)


def test_scorer_refuses_a_model_trained_for_another_spec():
    other = ModelSpec("cvr", Ad, ["app", "campaign"], bits=10, seed=4, algorithm="lr")
    model = train(other, logs(16))
    with pytest.raises(ValueError, match="does not match") as info:
        rust_core.Scorer(plan_for(NATIVE), {"cvr": (model, "1")})
    assert other.fingerprint in str(info.value)
    assert NATIVE.fingerprint in str(info.value)


def test_scorer_request_limits():
    scorer = rust_core.Scorer(
        plan_for(NATIVE), {"cvr": (train(NATIVE, logs(16)), "1")}, max_candidates=3
    )
    assert scorer.max_candidates == 3

    def call(n: int, models: list[str]) -> None:
        req = scorer_pb2.ScoreRequest(
            candidates=[scorer_pb2.Candidate(id=str(i)) for i in range(n)], models=models
        )
        scorer.score_request(req.SerializeToString())

    call(3, [])
    for n, models, code, message in [
        (4, [], "INVALID_ARGUMENT", "4 candidates, more than the limit of 3"),
        (0, [], "INVALID_ARGUMENT", "no candidates"),
        (1, ["ctr"], "NOT_FOUND", 'model "ctr" is not served'),
    ]:
        with pytest.raises(rust_core.ScoreError, match=message) as info:
            call(n, models)
        assert info.value.code == code
    with pytest.raises(rust_core.ScoreError, match="malformed ScoreRequest"):
        scorer.score_request(b"\x0a\xff")


def test_scorer_is_safe_to_share_between_threads():
    table = logs(32)
    scorer = rust_core.Scorer(plan_for(NATIVE), {"cvr": (train(NATIVE, table), "1")})
    requests = [
        scorer_pb2.ScoreRequest(
            request_id=str(i),
            context={"floor": "1"},
            candidates=[
                scorer_pb2.Candidate(id=str(j), features={"campaign": f"c{i}", "price": str(j)})
                for j in range(1 + i % 7)
            ],
        ).SerializeToString()
        for i in range(64)
    ]
    sequential = [scorer.score_request(r) for r in requests]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            assert list(pool.map(scorer.score_request, requests)) == sequential
