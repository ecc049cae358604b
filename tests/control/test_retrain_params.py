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
    recorded = {"eta": 0.05, "k": 8, "best_epoch": 4, "threads": 2}
    assert algorithm_for("ctr", "ffm", None, None) == "ffm"
    params = params_for("ffm", recorded, {}, "ffm")
    assert (params["eta"], params["k"]) == (0.05, 8)
    assert "best_epoch" not in params
    assert "threads" not in params
    # overrides win; an LR production version passes nothing to an FFM retrain and vice versa
    assert params_for("ffm", recorded, {"eta": 1.0}, "ffm")["eta"] == 1.0
    assert algorithm_for("ctr", "lr", None, None) == "lr"
    assert params_for("lr", {"alpha": 0.3}, {}, "lr")["alpha"] == 0.3
    assert params_for("ffm", {"alpha": 0.3}, {}, "lr") == params_for("ffm", None, {})
    assert algorithm_for("ctr", None, None, None) == "ffm"
    assert algorithm_for("cvr", None, None, None) == "lr"
    assert algorithm_for("ctr", "ffm", "lr", None) == "lr"
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
