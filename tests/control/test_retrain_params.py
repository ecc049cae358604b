"""Hyper-parameters of a retraining run and its idempotency key."""

from __future__ import annotations

import pytest

from control.errors import TrainingInputError
from control.retrain.params import ParamError, idempotency_key, parse_overrides
from control.retrain.trainer import algorithm_for, hyper_parameter_names, params_for

PARTS = [
    {"day": "2026-11-01", "role": "train", "rows": 10},
    {"day": "2026-11-02", "role": "holdout", "rows": 9},
]


def test_overrides_are_typed_and_checked():
    names = hyper_parameter_names()
    assert parse_overrides(["eta=5.0", "epochs=3", "auto_stop=true"], names) == {
        "eta": 5.0,
        "epochs": 3,
        "auto_stop": True,
    }
    with pytest.raises(ParamError, match="NAME=VALUE"):
        parse_overrides(["eta"], names)
    with pytest.raises(ParamError, match="unknown hyper-parameter 'foo'"):
        parse_overrides(["foo=1"], names)


def test_production_params_are_inherited_only_for_the_same_algorithm():
    recorded = {"algo": "ffm", "eta": 0.05, "k": 8, "best_epoch": 4, "threads": 2}
    assert algorithm_for("ctr", recorded, None) == "ffm"
    params = params_for("ffm", recorded, {})
    assert (params["eta"], params["k"]) == (0.05, 8)
    assert "best_epoch" not in params
    assert "threads" not in params
    # overrides win; an LR production version passes nothing to an FFM retrain and vice versa
    assert params_for("ffm", recorded, {"eta": 1.0})["eta"] == 1.0
    assert algorithm_for("ctr", {"algo": "lr", "alpha": 0.3}, None) == "lr"
    assert params_for("lr", {"algo": "lr", "alpha": 0.3}, {})["alpha"] == 0.3
    assert params_for("ffm", {"algo": "lr", "alpha": 0.3}, {}) == params_for("ffm", None, {})
    assert algorithm_for("ctr", None, None) == "ffm"
    assert algorithm_for("cvr", None, None) == "lr"
    assert algorithm_for("ctr", recorded, "lr") == "lr"
    with pytest.raises(TrainingInputError, match="lr has no hyper-parameter 'eta'"):
        params_for("lr", None, {"eta": 1.0})


def test_idempotency_key_changes_with_window_rows_spec_and_params():
    key = idempotency_key("ctr", "f" * 64, PARTS, {"eta": 0.2})
    assert key == idempotency_key("ctr", "f" * 64, list(PARTS), {"eta": 0.2})
    backfilled = [dict(PARTS[0], rows=11), PARTS[1]]
    others = [
        idempotency_key("cvr", "f" * 64, PARTS, {"eta": 0.2}),
        idempotency_key("ctr", "e" * 64, PARTS, {"eta": 0.2}),
        idempotency_key("ctr", "f" * 64, backfilled, {"eta": 0.2}),
        idempotency_key("ctr", "f" * 64, PARTS[:1], {"eta": 0.2}),
        idempotency_key("ctr", "f" * 64, PARTS, {"eta": 0.3}),
    ]
    assert len({key, *others}) == 6
    # paths do not matter: the same days moved to another root are the same data
    moved = [dict(p, path="/elsewhere") for p in PARTS]
    assert idempotency_key("ctr", "f" * 64, moved, {"eta": 0.2}) == key
