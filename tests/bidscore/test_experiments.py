"""Experiment records and the request-to-arm assignment (bidscore/experiments.py)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import pytest

from bidscore.errors import InputError
from bidscore.experiments import Experiment, Guardrails, assign, bucket, check_experiment


def _experiment(**changes: object) -> Experiment:
    base = Experiment(
        name="ctr-v7",
        model="ctr",
        mode="ab",
        control="6",
        treatment="7",
        share=0.1,
        key="user_id",
        salt="s1",
    )
    return base.replace(**changes)


def test_share_of_100k_keys_lands_in_treatment() -> None:
    keys = [f"user-{i}" for i in range(100_000)]
    treated = sum(assign("s1", key, 0.1) == "treatment" for key in keys)
    assert abs(treated / len(keys) - 0.1) <= 0.005


def test_the_same_key_gets_the_same_arm_in_another_process() -> None:
    keys = [f"device-{i}" for i in range(2_000)]
    here = "".join("T" if assign("s1", k, 0.3) == "treatment" else "C" for k in keys)
    code = (
        "from bidscore.experiments import assign\n"
        "keys = [f'device-{i}' for i in range(2_000)]\n"
        "print(''.join('T' if assign('s1', k, 0.3) == 'treatment' else 'C' for k in keys))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert there == here
    assert 0 < here.count("T") < len(keys)


def test_a_new_salt_reshuffles_the_population() -> None:
    keys = [f"user-{i}" for i in range(20_000)]
    first = {k for k in keys if assign("a", k, 0.5) == "treatment"}
    second = {k for k in keys if assign("b", k, 0.5) == "treatment"}
    # Independent halves overlap on about a quarter of the keys, identical ones on half.
    assert abs(len(first & second) / len(keys) - 0.25) < 0.02


def test_a_request_without_the_key_goes_to_control() -> None:
    assert assign("s", None, 0.99) == "control"
    assert assign("s", "", 0.99) == "control"


def test_bucket_follows_the_documented_contract() -> None:
    digest = hashlib.blake2b(b"salt\x1fuser-1", digest_size=8).digest()
    assert bucket("salt", "user-1") == int.from_bytes(digest, "big") / 2**64
    assert 0.0 <= bucket("salt", "user-1") < 1.0


def test_records_round_trip_through_json() -> None:
    canary = _experiment(mode="canary", guardrails=Guardrails(max_psi=0.1), extra={"a": 1})
    assert Experiment.from_json(canary.to_json()) == canary
    assert Experiment.from_json({**canary.to_json(), "future_field": 1}) == canary


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"share": 0.0}, "share must be in (0, 1)"),
        ({"share": 1.0}, "share must be in (0, 1)"),
        ({"share": 1.5, "mode": "shadow"}, "share must be in (0, 1]"),
        ({"key": ""}, "--key must name"),
        ({"key": "user id"}, "invalid context key"),
        ({"treatment": "6"}, "both version 6"),
        ({"control": "latest"}, "control version must be a version number"),
        ({"mode": "blue"}, "mode must be one of"),
        ({"name": "bad name"}, "invalid experiment name"),
        ({"mode": "canary"}, "a canary needs guardrails"),
    ],
)
def test_invalid_fields_are_one_clear_line(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        check_experiment(_experiment(**changes))


def test_a_shadow_may_cover_every_request() -> None:
    assert check_experiment(_experiment(mode="shadow", share=1.0)).share == 1.0
