"""The search: an Optuna study over one algorithm's space, each trial trained by rust_core
with early stopping on its validation rows, pruned from its per-epoch validation logloss.

Pruning works through rust_core's `progress` callback: it reports each epoch's validation
logloss to the trial, and when the pruner says stop it raises `optuna.TrialPruned`. rust_core
(`bindings/train.rs`) stops training at that epoch and re-raises the exception as is, which
Optuna records as a pruned trial.

With cross-validation a trial trains once per fold; the score is the mean of the folds' best
validation loglosses, and epochs are reported on one step axis (fold i, epoch e -> step
i * (MAX_EPOCHS + 1) + e) so the pruner compares like with like.

Same seed, same data, `workers=1` and `threads=1` give the same trials and the same result:
the sampler is seeded and every trial trains with the same seed. Parallel trials
(`workers > 1`) finish in a timing-dependent order, which changes what the sampler sees.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

import rust_core
from control.errors import TuningError
from control.tuning.space import MAX_EPOCHS, SPACES

__all__ = [
    "Fold",
    "SearchOptions",
    "TrialRecord",
    "TuneResult",
    "TuningError",
    "run_search",
    "tune_ffm",
    "tune_lr",
]


@dataclass(frozen=True)
class Fold:
    """One train/validation pair of a search; `name` says which rows it holds."""

    train: rust_core.Dataset
    valid: rust_core.Dataset
    name: str = "train/valid"


@dataclass(frozen=True)
class TrialRecord:
    """One trial: what it tried, how it scored and how far it trained."""

    number: int
    params: dict[str, Any]
    valid_logloss: float | None  # mean over folds; None unless complete
    spread: float | None  # standard deviation over folds (0 with one fold)
    epochs: int  # epochs trained, over every fold
    best_epoch: int | None  # the epoch `params` retrain to (median over folds)
    state: str  # complete, pruned or failed
    seconds: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "params": self.params,
            "valid_logloss": self.valid_logloss,
            "spread": self.spread,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "state": self.state,
            "seconds": round(self.seconds, 4),
            "error": self.error,
        }


@dataclass
class TuneResult:
    """The chosen parameters, their score, the best trial's model and every trial."""

    algorithm: str
    params: dict[str, Any]  # keyword arguments of rust_core.train_ffm / train_lr
    valid_logloss: float
    model: rust_core.Model  # the best trial's model (its last fold's, with --cv)
    trials: list[TrialRecord]
    spread: float = 0.0
    folds: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def top(self, n: int = 10) -> list[TrialRecord]:
        """The `n` best complete trials, best first."""
        done = [t for t in self.trials if t.valid_logloss is not None]
        return sorted(done, key=lambda t: (t.valid_logloss, t.number))[:n]

    def summary(self) -> dict[str, Any]:
        """The study in a few numbers (saved with the parameters, printed with --json)."""
        states = [t.state for t in self.trials]
        return {
            "algorithm": self.algorithm,
            "valid_logloss": self.valid_logloss,
            "spread": self.spread,
            "trials": len(self.trials),
            "complete": states.count("complete"),
            "pruned": states.count("pruned"),
            "failed": states.count("failed"),
            "best_trial": self.top(1)[0].number if self.top(1) else None,
            "folds": self.folds,
            "seconds": round(self.seconds, 3),
        }


TrialCallback = Callable[[TrialRecord, TrialRecord | None], None]


@dataclass(frozen=True)
class SearchOptions:
    """How a search runs (not what it searches)."""

    trials: int = 30
    seed: int = 0
    threads: int = 1
    timeout: float | None = None
    workers: int = 1  # trials run at once (a bounded thread pool; rust_core drops the GIL)
    prune: bool = True
    fixed: dict[str, Any] = field(default_factory=dict)  # bits, fingerprint, downsample_rate

    def check(self) -> None:
        if self.trials < 1:
            raise TuningError(f"--trials must be >= 1, got {self.trials}")
        if self.threads < 1:
            raise TuningError(f"--threads must be >= 1, got {self.threads}")
        if self.workers < 1:
            raise TuningError(f"--workers must be >= 1, got {self.workers}")
        if self.timeout is not None and not self.timeout > 0:
            raise TuningError(f"--timeout must be > 0 seconds, got {self.timeout}")


# A trial whose validation logloss fell by more than this fraction in its last epoch is
# still learning and is not pruned (see `StillLearningPruner`).
MIN_GAIN = 0.005


class StillLearningPruner(optuna.pruners.BasePruner):
    """Optuna's median pruner, except for a trial that is still learning fast.

    The median pruner compares trials at the same epoch, which favours fast starters: a trial
    with a small learning rate or a strong l2 is worse than the median after two epochs and
    pruned, even when it would end best (on the Frappe CTR data the best of LIBFFM's grid,
    eta 0.2 and lambda 1e-3, needs 50 epochs and is behind every fast trial at epoch 2).
    Here a trial whose validation logloss fell by more than `min_gain` (relative) in its last
    epoch is never pruned; once its progress slows, the median pruner decides as usual.
    """

    def __init__(self, inner: optuna.pruners.BasePruner, min_gain: float = MIN_GAIN) -> None:
        self.inner = inner
        self.min_gain = min_gain

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        values = trial.intermediate_values
        before = values.get(step - 1)  # none at a fold's first epoch
        if before is not None and values[step] < before * (1.0 - self.min_gain):
            return False
        return self.inner.prune(study, trial)


def sampler(seed: int) -> optuna.samplers.BaseSampler:
    """Seeded TPE, multivariate, after 6 random trials.

    Multivariate: the good learning rates depend on l2 and k (a small step with a strong l2
    needs many epochs), which independent per-parameter densities cannot see. Six random
    trials instead of Optuna's ten: with a budget of 30, ten would spend a third of it
    before the model of the search is used. On Frappe (docs/benchmarks.md) this moved the
    30-trial search's validation logloss from 0.2245 to 0.2181.
    """
    with warnings.catch_warnings():
        # `multivariate` has been "experimental" since Optuna 2.2; it is the one we measured.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=6)


def pruner(prune: bool) -> optuna.pruners.BasePruner:
    """Median pruning after a few complete trials and two epochs, sparing trials still
    learning fast (`StillLearningPruner`); none for comparisons."""
    if not prune:
        return optuna.pruners.NopPruner()
    return StillLearningPruner(optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2))


def _check_labels(folds: Sequence[Fold]) -> None:
    for fold in folds:
        for role, ds in (("training", fold.train), ("validation", fold.valid)):
            labels = ds.labels
            if ds.num_rows == 0:
                raise TuningError(f"{fold.name}: no {role} rows")
            positives = int((labels > 0.5).sum())
            if positives in (0, ds.num_rows):
                raise TuningError(
                    f"{fold.name}: the label is {int(positives > 0)} in all {ds.num_rows}"
                    f" {role} rows; tuning needs both label values"
                )


class _Objective:
    """Trains one trial on every fold; keeps the best trial's model (thread-safe)."""

    def __init__(self, algorithm: str, folds: Sequence[Fold], options: SearchOptions) -> None:
        self.space = SPACES[algorithm]
        self.trainer = rust_core.train_ffm if algorithm == "ffm" else rust_core.train_lr
        self.folds = folds
        self.options = options
        self.lock = threading.Lock()
        self.best: tuple[float, int, rust_core.Model] | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        params = self.space.suggest(trial)
        losses: list[float] = []
        best_epochs: list[int] = []
        epochs_run = 0
        model: rust_core.Model | None = None
        start = time.perf_counter()
        try:
            for i, fold in enumerate(self.folds):
                fold_best = math.inf

                def progress(epoch: int, _train: float, valid: float | None, i: int = i) -> None:
                    nonlocal epochs_run, fold_best
                    epochs_run += 1
                    trial.set_user_attr("epochs", epochs_run)
                    if valid is None:
                        return
                    fold_best = min(fold_best, valid)
                    if self.options.prune:
                        trial.report(valid, i * (MAX_EPOCHS + 1) + epoch)
                        if trial.should_prune():
                            raise optuna.TrialPruned(f"fold {i + 1}, epoch {epoch}")

                model = self.trainer(
                    fold.train,
                    fold.valid,
                    **params,
                    epochs=MAX_EPOCHS,
                    auto_stop=True,
                    threads=self.options.threads,
                    seed=self.options.seed,
                    progress=progress,
                    **self.options.fixed,
                )
                if not math.isfinite(fold_best):
                    raise ValueError("training diverged (non-finite validation logloss)")
                losses.append(fold_best)
                best_epochs.append(model.best_epoch or MAX_EPOCHS)
        except ValueError as exc:
            trial.set_user_attr("error", " ".join(str(exc).split()))
            raise
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - start)
        mean = statistics.fmean(losses)
        trial.set_user_attr("spread", statistics.pstdev(losses) if len(losses) > 1 else 0.0)
        trial.set_user_attr("best_epoch", int(statistics.median_low(best_epochs)))
        assert model is not None  # at least one fold
        with self.lock:
            if self.best is None or (mean, trial.number) < self.best[:2]:
                self.best = (mean, trial.number, model)
        return mean


def _record(frozen: optuna.trial.FrozenTrial) -> TrialRecord:
    attrs = frozen.user_attrs
    state = {
        optuna.trial.TrialState.COMPLETE: "complete",
        optuna.trial.TrialState.PRUNED: "pruned",
    }.get(frozen.state, "failed")
    return TrialRecord(
        number=frozen.number,
        params=dict(frozen.params),
        valid_logloss=frozen.value if state == "complete" else None,
        spread=attrs.get("spread"),
        epochs=int(attrs.get("epochs", 0)),
        best_epoch=attrs.get("best_epoch"),
        state=state,
        seconds=float(attrs.get("seconds", 0.0)),
        error=attrs.get("error"),
    )


# Held-fixed settings that define the model rather than the data (bits, fingerprint and the
# downsampling rate come from the data's spec): they belong in the chosen parameters.
_MODEL_KEYS = ("linear",)


def chosen_params(chosen: TrialRecord, options: SearchOptions) -> dict[str, Any]:
    """Keyword arguments that retrain `chosen`'s model: its sampled parameters, the model
    settings held fixed, its best epoch with early stopping off."""
    model = {k: options.fixed[k] for k in _MODEL_KEYS if k in options.fixed}
    return {
        **chosen.params,
        **model,
        "epochs": chosen.best_epoch or MAX_EPOCHS,
        "auto_stop": False,
    }


def run_search(
    algorithm: str,
    folds: Sequence[Fold],
    options: SearchOptions | None = None,
    *,
    on_trial: TrialCallback | None = None,
) -> TuneResult:
    """Search `algorithm`'s space on `folds`; the best trial's parameters and model."""
    opts = options or SearchOptions()
    opts.check()
    if algorithm not in SPACES:
        raise TuningError(f"unknown algorithm {algorithm!r} (use ffm or lr)")
    if not folds:
        raise TuningError("no folds to tune on")
    _check_labels(folds)
    # Optuna logs every trial at INFO; the CLI draws its own progress.
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=sampler(opts.seed),
        pruner=pruner(opts.prune),
    )
    study.enqueue_trial(SPACES[algorithm].start())
    objective = _Objective(algorithm, folds, opts)
    best_record: list[TrialRecord] = []

    def report(_study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        record = _record(frozen)
        if record.valid_logloss is not None and (
            not best_record or record.valid_logloss < (best_record[0].valid_logloss or math.inf)
        ):
            best_record[:] = [record]
        if on_trial is not None:
            on_trial(record, best_record[0] if best_record else None)

    start = time.perf_counter()
    study.optimize(
        objective,
        n_trials=opts.trials,
        timeout=opts.timeout,
        n_jobs=opts.workers,
        catch=(ValueError,),
        callbacks=[report],
        gc_after_trial=False,
    )
    seconds = time.perf_counter() - start
    records = sorted((_record(t) for t in study.trials), key=lambda r: r.number)
    if objective.best is None:
        errors = [r.error for r in records if r.error]
        why = f": {errors[0]}" if errors else ""
        raise TuningError(f"no trial of {len(records)} completed{why}")
    loss, number, model = objective.best
    chosen = next(r for r in records if r.number == number)
    return TuneResult(
        algorithm=algorithm,
        params=chosen_params(chosen, opts),
        valid_logloss=loss,
        model=model,
        trials=records,
        spread=chosen.spread or 0.0,
        folds=[f.name for f in folds],
        seconds=seconds,
    )


def tune_ffm(
    train: rust_core.Dataset,
    valid: rust_core.Dataset,
    *,
    trials: int = 30,
    seed: int = 0,
    threads: int = 1,
    timeout: float | None = None,
    workers: int = 1,
    prune: bool = True,
    on_trial: TrialCallback | None = None,
    linear: bool = True,
) -> TuneResult:
    """Tune an FFM on `train`, early-stopping and scoring on `valid` (see the module doc).

    `linear=False` searches LIBFFM's model (pairwise terms only, no bias or linear terms:
    `rust_core.train_ffm(linear=False)`); it is not searched, it holds for every trial, and
    the result's `params` carry it."""
    fixed: dict[str, Any] = {} if linear else {"linear": False}
    options = SearchOptions(trials, seed, threads, timeout, workers, prune, fixed)
    return run_search("ffm", [Fold(train, valid)], options, on_trial=on_trial)


def tune_lr(
    train: rust_core.Dataset,
    valid: rust_core.Dataset,
    *,
    trials: int = 30,
    seed: int = 0,
    threads: int = 1,
    timeout: float | None = None,
    workers: int = 1,
    prune: bool = True,
    on_trial: TrialCallback | None = None,
) -> TuneResult:
    """Tune an FTRL logistic regression like `tune_ffm`."""
    options = SearchOptions(trials, seed, threads, timeout, workers, prune)
    return run_search("lr", [Fold(train, valid)], options, on_trial=on_trial)
