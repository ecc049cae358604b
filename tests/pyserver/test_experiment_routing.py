"""Experiment routing in rust_core, and the prediction-log records of routed requests, without
a server: the Rust bucket equals `bidscore.experiments.bucket`, the scorer answers each request
with the arm `assign()` gives, shadow scores come from the treatment, records carry arms."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import rust_core
from bidscore.experiments import assign, bucket
from bidscore.v1 import scorer_pb2
from pyserver.predlog import PredictionLog
from pyserver.serving_features import ServingFeatures
from tests.pyserver import serve_specs
from tests.pyserver.serve_harness import TrainedModel, request_bytes
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


def test_rust_bucket_matches_the_python_contract_bit_for_bit() -> None:
    rng = random.Random(5)
    alphabet = "abcXYZ019_-:.é漢\U0001f600"
    for _ in range(5000):
        salt = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
        assert rust_core.experiment_bucket(salt, value) == bucket(salt, value), (salt, value)


@pytest.fixture(scope="module")
def features() -> ServingFeatures:
    return ServingFeatures([serve_specs.SPECS["ctr"], serve_specs.SPECS["cvr"]])


def _payload(user: str | None, i: int) -> bytes:
    from control import datagen  # noqa: PLC0415

    payload = datagen.request_payloads(1, seed=100 + i, candidates=3)[0]
    if user is None:
        payload["context"].pop("user_id", None)
    else:
        payload["context"]["user_id"] = user
    return request_bytes(payload, models=["ctr", "cvr"])


def _scores(response: bytes) -> tuple[list[tuple[str, str]], list[list[float]]]:
    reply = scorer_pb2.ScoreResponse.FromString(response)
    return [(m.name, m.version) for m in reply.models], [list(c.scores) for c in reply.candidates]


@pytest.mark.parametrize("mode", ["ab", "shadow"])
def test_scorer_routes_by_assign_and_shadows_the_treatment(
    features: ServingFeatures, trained: dict[str, list[TrainedModel]], mode: str
) -> None:
    ctr1, ctr2 = (m.model for m in trained["ctr"])
    cvr1 = trained["cvr"][0].model
    models = {"ctr": (ctr1, "1"), "cvr": (cvr1, "1")}
    routed = rust_core.Scorer(
        features.plan,
        models,
        experiments={"ctr": ("e1", mode, "user_id", "salt", 0.5, (ctr2, "2"))},
    )
    control = rust_core.Scorer(features.plan, models)
    treatment = rust_core.Scorer(features.plan, {**models, "ctr": (ctr2, "2")})
    assert routed.experiments == [("ctr", "e1", "2")]
    python = features.python_request_values
    arms = set()
    for i in range(40):
        user = f"user-{i}"
        request = _payload(user, i)
        values = python(request)
        response, count, routing = routed.score_request_routed(request, values)
        assert response is not None
        assert count == 3
        arm = assign("salt", user, 0.5)
        arms.add(arm)
        want = control if mode == "shadow" or arm == "control" else treatment
        assert _scores(response) == _scores(want.score_request(request, values))
        shadow = routed.score_shadow(request, values)
        if mode == "shadow" and arm == "treatment":
            assert routing == 4
            assert shadow is not None
            names, scores = _scores(shadow)
            assert names == [("ctr", "2")]
            assert scores == [[s[0]] for s in _scores(treatment.score_request(request, values))[1]]
        else:
            assert routing == (2 if arm == "treatment" else 1)
            assert shadow is None
        # The stream path routes the same way.
        [(stream_response, _, code, stream_routing)] = routed.score_many(
            [request], 1 << 20, None, [values]
        )
        assert (stream_response, code, stream_routing) == (response, "OK", routing)
    assert arms == {"control", "treatment"}
    response, _, routing = routed.score_request_routed(_payload(None, 0), python(_payload(None, 0)))
    assert routing == 3  # key missing: control
    assert response is not None
    assert _scores(response)[0][0] == ("ctr", "1")


def test_a_degraded_experiment_is_all_control(
    features: ServingFeatures, trained: dict[str, list[TrainedModel]]
) -> None:
    ctr1 = trained["ctr"][0].model
    routed = rust_core.Scorer(
        features.plan,
        {"ctr": (ctr1, "1")},
        experiments={"ctr": ("e1", "ab", "user_id", "salt", 0.99, None)},
    )
    assert routed.experiments == [("ctr", "e1", None)]
    request = scorer_pb2.ScoreRequest.FromString(_payload("user-1", 1))
    del request.models[:]
    request.models.append("ctr")
    _, _, routing = routed.score_request_routed(request.SerializeToString())
    assert routing == 1


def test_a_treatment_with_another_fingerprint_is_refused(
    features: ServingFeatures, trained: dict[str, list[TrainedModel]]
) -> None:
    with pytest.raises(ValueError, match="fingerprint"):
        rust_core.Scorer(
            features.plan,
            {"ctr": (trained["ctr"][0].model, "1")},
            experiments={"ctr": ("e1", "ab", "user_id", "s", 0.5, (trained["cvr"][0].model, "9"))},
        )


def test_prediction_log_records_arms_and_shadow_scores(tmp_path: Path) -> None:
    log = PredictionLog(
        str(tmp_path), sample_rate=0.0, experiment_sample_rate=1.0, registry=CollectorRegistry()
    )
    request = scorer_pb2.ScoreRequest(request_id="r1")
    request.candidates.add(id="a")
    request.candidates.add(id="b")
    response = scorer_pb2.ScoreResponse(
        request_id="r1",
        models=[
            scorer_pb2.ModelVersion(name="ctr", version="1"),
            scorer_pb2.ModelVersion(name="cvr", version="4"),
        ],
        candidates=[
            scorer_pb2.CandidateScores(id="a", scores=[0.5, 0.25]),
            scorer_pb2.CandidateScores(id="b", scores=[0.125, 0.75]),
        ],
    )
    shadow = scorer_pb2.ScoreResponse(
        request_id="r1",
        models=[scorer_pb2.ModelVersion(name="ctr", version="7")],
        candidates=[
            scorer_pb2.CandidateScores(id="a", scores=[0.0625]),
            scorer_pb2.CandidateScores(id="b", scores=[0.375]),
        ],
    )
    assert not log.log_response(request, response)  # the normal rate is 0
    assert log.sample(experiment=True)
    assert log.enqueue(
        request,
        response,
        experiments=(("ctr", "e1", "control"),),
        shadow=shadow.SerializeToString(),
    )
    assert log.close()
    wait_until(lambda: log.written == 1, timeout=10, message="record written")
    [path] = tmp_path.glob("*.jsonl")
    record = json.loads(path.read_text())
    assert record["models"] == [
        {"name": "ctr", "version": "1", "experiment": "e1", "arm": "control"},
        {"name": "cvr", "version": "4"},
    ]
    assert record["shadow"] == [
        {
            "name": "ctr",
            "version": "7",
            "experiment": "e1",
            "arm": "treatment",
            "scores": [0.0625, 0.375],
        }
    ]
    assert [c["scores"] for c in record["candidates"]] == [[0.5, 0.25], [0.125, 0.75]]
