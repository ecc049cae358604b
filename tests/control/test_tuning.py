"""`control.tuning`: the search (quality against the defaults, reproducibility, pruning through
rust_core's progress callback), the folds, the executors and the search's page."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import optuna
import pytest

import rust_core
from control.errors import TuningError
from control.tuning import Fold, SearchOptions, run_search, tune_ffm, tune_lr
from control.tuning.executors import parse_executor
from control.tuning.folds import day_folds, random_folds
from control.tuning.plots import importances, page
from tests.control.tuning_data import planted_split

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def split() -> tuple[rust_core.Dataset, rust_core.Dataset]:
    return planted_split()


def _defaults_valid_logloss(train: rust_core.Dataset, valid: rust_core.Dataset) -> float:
    losses: list[float] = []
    rust_core.train_ffm(train, valid, progress=lambda _e, _t, v: losses.append(v))
    return losses[-1]


def test_tune_ffm_is_at_least_as_good_as_the_defaults_and_retrains_to_its_model(split):
    train, valid = split
    result = tune_ffm(train, valid, trials=15, seed=0)
    assert result.valid_logloss <= _defaults_valid_logloss(train, valid)
    assert len(result.trials) == 15
    assert {"k", "eta", "l2", "normalize", "epochs"} <= set(result.params)
    assert result.params["auto_stop"] is False
    # The chosen keyword arguments retrain the best trial's model exactly (threads=1).
    again = rust_core.train_ffm(train, None, **result.params)
    assert np.array_equal(again.predict(valid), result.model.predict(valid))
    best = result.top(1)[0]
    assert best.valid_logloss == result.valid_logloss
    assert all(t.state in {"complete", "pruned"} for t in result.trials)


def test_tune_ffm_without_linear_terms_searches_libffms_model(split):
    train, valid = split
    result = tune_ffm(train, valid, trials=4, seed=0, linear=False)
    assert result.params["linear"] is False
    assert "linear" not in result.trials[0].params  # fixed, not searched
    again = rust_core.train_ffm(train, None, **result.params)
    assert np.array_equal(again.predict(valid), result.model.predict(valid))
    with_linear = rust_core.train_ffm(train, None, **(result.params | {"linear": True}))
    assert not np.array_equal(with_linear.predict(valid), result.model.predict(valid))


def test_same_seed_same_result(split):
    train, valid = split
    first = tune_ffm(train, valid, trials=6, seed=4)
    second = tune_ffm(train, valid, trials=6, seed=4)
    assert first.params == second.params
    assert first.valid_logloss == second.valid_logloss
    strip = [(t.params, t.valid_logloss, t.epochs, t.state) for t in first.trials]
    assert strip == [(t.params, t.valid_logloss, t.epochs, t.state) for t in second.trials]


def test_a_pruned_trial_stops_training_at_that_epoch(split):
    train, valid = split
    pruned = tune_ffm(train, valid, trials=12, seed=1)
    complete = tune_ffm(train, valid, trials=12, seed=1, prune=False)
    assert any(t.state == "pruned" for t in pruned.trials)
    assert all(t.state == "complete" for t in complete.trials)
    for t in pruned.trials:
        if t.state == "pruned":
            # rust_core stopped at the epoch whose callback raised: never the full 50.
            assert 1 <= t.epochs < 50
    assert sum(t.epochs for t in pruned.trials) < sum(t.epochs for t in complete.trials)


def test_an_exception_from_the_progress_callback_stops_rust_core(split):
    train, valid = split
    seen: list[int] = []

    def stop_at_two(epoch: int, _train: float, _valid: float | None) -> None:
        seen.append(epoch)
        if epoch == 2:
            raise optuna.TrialPruned("stop")

    with pytest.raises(optuna.TrialPruned):
        rust_core.train_ffm(train, valid, epochs=10, progress=stop_at_two)
    assert seen == [1, 2]


def test_tune_lr(split):
    train, valid = split
    result = tune_lr(train, valid, trials=4, seed=0)
    assert {"alpha", "beta", "l1", "l2", "epochs"} <= set(result.params)
    again = rust_core.train_lr(train, None, **result.params)
    assert np.array_equal(again.predict(valid), result.model.predict(valid))


def test_parallel_trials_on_a_bounded_pool(split):
    train, valid = split
    result = run_search("ffm", [Fold(train, valid)], SearchOptions(trials=4, workers=2))
    assert len(result.trials) == 4


def test_cross_validated_search_reports_the_spread(split):
    train, valid = split
    folds = [Fold(train, valid, "a"), Fold(valid, train, "b")]
    result = run_search("ffm", folds, SearchOptions(trials=3))
    assert result.folds == ["a", "b"]
    assert result.spread > 0
    assert all(t.spread is not None for t in result.trials if t.state == "complete")


def test_bad_input_is_a_tuning_error(split):
    train, valid = split
    with pytest.raises(TuningError, match="--trials must be >= 1"):
        tune_ffm(train, valid, trials=0)
    one_label = rust_core.Dataset.from_csr(
        np.array([0, 1, 2], dtype=np.uint64),
        np.zeros(2, dtype=np.uint32),
        np.array([1, 2], dtype=np.uint32),
        np.ones(2, dtype=np.float32),
        np.zeros(2, dtype=np.float32),
    )
    with pytest.raises(TuningError, match="needs both label values"):
        tune_ffm(one_label, valid, trials=2)
    with pytest.raises(TuningError, match="unknown algorithm"):
        run_search("gbdt", [Fold(train, valid)])


def test_day_folds_never_train_on_the_day_they_validate():
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(6)]
    folds = day_folds(list(reversed(days)), 3)
    assert [f.valid_day for f in folds] == days[3:]
    for fold in folds:
        assert fold.valid_day not in fold.train_days
        assert max(fold.train_days) < fold.valid_day  # forward chaining: only the past
        assert list(fold.train_days) == [d for d in days if d < fold.valid_day]
    with pytest.raises(TuningError, match="at least 4 daily partitions"):
        day_folds(days[:3], 3)


def test_random_folds_cover_every_row_once():
    folds = random_folds(103, 4, seed=2)
    valid = np.concatenate([f.valid for f in folds])
    assert np.array_equal(np.sort(valid), np.arange(103))
    for fold in folds:
        assert not set(fold.train) & set(fold.valid)
        assert len(fold.train) + len(fold.valid) == 103
    assert [f.valid.tolist() for f in folds] == [f.valid.tolist() for f in random_folds(103, 4, 2)]
    with pytest.raises(TuningError, match="K >= 2"):
        random_folds(10, 1, 0)


def test_executors():
    assert parse_executor(None, None, 1).workers == 1
    assert parse_executor("local", 3, 1).workers == 3
    assert parse_executor("local", None, 1).workers >= 1
    ray = parse_executor("ray", None, 2, ray_cpus=4)
    assert (ray.name, ray.workers) == ("ray", 0)  # decided from the cluster's CPUs
    assert ray.on_ray(4.0, 2).workers == 2
    assert parse_executor("ray://head:10001", 3, 1).on_ray(8.0, 1).workers == 3
    with pytest.raises(TuningError, match="--ray-cpus needs --executor ray"):
        parse_executor("local", None, 1, ray_cpus=2)
    with pytest.raises(TuningError, match="unknown executor"):
        parse_executor("dask", None, 1)
    with pytest.raises(TuningError, match="--workers must be >= 1"):
        parse_executor("local", 0, 1)


def test_the_search_page_has_both_plots(split):
    train, valid = split
    result = tune_ffm(train, valid, trials=5, seed=0)
    shares = importances(result)
    assert set(shares) == {"k", "eta", "l2", "normalize"}
    assert sum(shares.values()) == pytest.approx(1.0) or sum(shares.values()) == 0
    html = page(result, "ctr tuning")
    assert html.count("<svg") == 2
    assert "Parameter importances" in html


def test_timeout_stops_starting_trials(split):
    train, valid = split
    result = tune_ffm(train, valid, trials=200, timeout=0.05)
    assert 1 <= len(result.trials) < 200
