"""A search whose trials run as Ray tasks (`control tune --executor ray|ray://...`).

The Optuna study stays on the driver and is driven with ask/tell: the driver asks a trial,
samples its parameters and starts a Ray task (reserving `--threads` CPUs) that trains it on
every fold. The folds go to the object store once, as CSR arrays (`FoldArrays`); a task
builds its `rust_core.Dataset`s from them.

Pruning: after every epoch the task's progress callback reports the validation logloss to a
small threaded Ray actor (`Mailbox`) and waits for the answer. The driver takes the reports
from the mailbox, feeds them to the trial (`trial.report`), asks the pruner
(`trial.should_prune`) and posts the decision back; a task told to stop raises
`optuna.TrialPruned` from the callback, which rust_core turns into the end of training. So
the study decides exactly as `run_search` does in one process: with one trial at a time
(`--workers 1`) and threads=1, the same seed gives the same trials, states and result.

The best trial's model comes back as model-file bytes (only the best one is kept).
"""

from __future__ import annotations

import logging
import math
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import optuna

import rust_core
from control.errors import TuningError
from control.tuning.search import (
    Fold,
    SearchOptions,
    TrialCallback,
    TrialRecord,
    TuneResult,
    _check_labels,
    _record,
    chosen_params,
    pruner,
    sampler,
)
from control.tuning.space import MAX_EPOCHS, SPACES

# How long a task waits for the driver's pruning decision before it gives up on the trial.
DECISION_TIMEOUT_S = 600.0
# How long the driver waits for reports before it looks at finished tasks again.
POLL_S = 0.05

Csr = tuple[
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint32],
    npt.NDArray[np.uint32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32] | None,
]


@dataclass(frozen=True)
class FoldArrays:
    """A fold as CSR arrays (indptr, fields, indices, values, labels, weights), picklable."""

    train: Csr
    valid: Csr
    name: str

    def fold(self) -> Fold:
        train, valid = (rust_core.Dataset.from_csr(*csr) for csr in (self.train, self.valid))
        return Fold(train, valid, self.name)


class Mailbox:
    """The Ray actor between trials' epochs and the driver's pruner (threaded: a task
    waiting for its decision does not block the driver's calls)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.reports: list[tuple[int, int, float]] = []
        self.decisions: dict[tuple[int, int], bool] = {}

    def report(self, number: int, step: int, value: float) -> bool:
        """A trial's epoch: wait for the driver's decision (True: prune)."""
        with self.cond:
            self.reports.append((number, step, value))
            self.cond.notify_all()
            if not self.cond.wait_for(
                lambda: (number, step) in self.decisions, timeout=DECISION_TIMEOUT_S
            ):
                raise TimeoutError(f"trial {number}: no pruning decision for step {step}")
            return self.decisions.pop((number, step))

    def take(self, timeout: float) -> list[tuple[int, int, float]]:
        """The reports since the last call (waits up to `timeout` for one)."""
        with self.cond:
            self.cond.wait_for(lambda: bool(self.reports), timeout=timeout)
            out, self.reports = self.reports, []
            return out

    def decide(self, number: int, step: int, prune: bool) -> None:
        with self.cond:
            self.decisions[(number, step)] = prune
            self.cond.notify_all()


def run_trial(
    algorithm: str,
    folds: Sequence[FoldArrays],
    *,
    params: dict[str, Any],
    number: int,
    options: SearchOptions,
    mailbox: Any,
) -> dict[str, Any]:
    """One trial on every fold (in a Ray task), as `search._Objective` trains it. Returns
    JSON-ready data: `state` (complete, pruned, failed), `value`, `spread`, `best_epoch`,
    `epochs`, `seconds`, `error`, and `model` (the last fold's model file, bytes)."""
    import ray  # noqa: PLC0415 - in a Ray worker

    trainer = rust_core.train_ffm if algorithm == "ffm" else rust_core.train_lr
    losses: list[float] = []
    best_epochs: list[int] = []
    epochs_run = 0
    model: rust_core.Model | None = None
    start = time.perf_counter()

    def done(state: str, **extra: Any) -> dict[str, Any]:
        return {
            "state": state,
            "epochs": epochs_run,
            "seconds": time.perf_counter() - start,
            **extra,
        }

    try:
        for i, arrays in enumerate(folds):
            fold = arrays.fold()
            fold_best = math.inf

            def progress(epoch: int, _train: float, valid: float | None, i: int = i) -> None:
                nonlocal epochs_run, fold_best
                epochs_run += 1
                if valid is None:
                    return
                fold_best = min(fold_best, valid)
                if options.prune:
                    step = i * (MAX_EPOCHS + 1) + epoch
                    if ray.get(mailbox.report.remote(number, step, valid)):
                        raise optuna.TrialPruned(f"fold {i + 1}, epoch {epoch}")

            model = trainer(
                fold.train,
                fold.valid,
                **params,
                epochs=MAX_EPOCHS,
                auto_stop=True,
                threads=options.threads,
                seed=options.seed,
                progress=progress,
                **options.fixed,
            )
            if not math.isfinite(fold_best):
                raise ValueError("training diverged (non-finite validation logloss)")
            losses.append(fold_best)
            best_epochs.append(model.best_epoch or MAX_EPOCHS)
    except optuna.TrialPruned:
        return done("pruned")
    except ValueError as exc:
        return done("failed", error=" ".join(str(exc).split()))
    assert model is not None
    with tempfile.TemporaryDirectory(prefix="bidscore-trial-") as tmp:
        path = Path(tmp) / "model.bin"
        model.save(str(path))
        blob = path.read_bytes()
    return done(
        "complete",
        value=statistics.fmean(losses),
        spread=statistics.pstdev(losses) if len(losses) > 1 else 0.0,
        best_epoch=int(statistics.median_low(best_epochs)),
        model=blob,
    )


def _load(blob: bytes) -> rust_core.Model:
    with tempfile.TemporaryDirectory(prefix="bidscore-best-") as tmp:
        path = Path(tmp) / "model.bin"
        path.write_bytes(blob)
        return rust_core.load_model(str(path))


class _Driver:
    """The study's side of a Ray search: asks, starts, relays pruning decisions, tells."""

    def __init__(
        self,
        algorithm: str,
        folds: Sequence[FoldArrays],
        options: SearchOptions,
        ray: Any,
        on_trial: TrialCallback | None,
    ) -> None:
        self.algorithm, self.options, self.ray, self.on_trial = algorithm, options, ray, on_trial
        self.space = SPACES[algorithm]
        self.study = optuna.create_study(
            direction="minimize",
            sampler=sampler(options.seed),
            pruner=pruner(options.prune),
        )
        self.study.enqueue_trial(self.space.start())
        self.mailbox = ray.remote(num_cpus=0, max_concurrency=options.workers + 4)(Mailbox).remote()
        self.task = ray.remote(num_cpus=options.threads, max_retries=0)(run_trial)
        self.folds = ray.put(list(folds))
        self.running: dict[Any, optuna.Trial] = {}
        self.by_number: dict[int, optuna.Trial] = {}
        self.best: tuple[float, int, bytes] | None = None
        self.best_record: TrialRecord | None = None
        self.asked = 0
        self.start = time.perf_counter()

    def timed_out(self) -> bool:
        timeout = self.options.timeout
        return timeout is not None and time.perf_counter() - self.start > timeout

    def launch(self) -> None:
        opts = self.options
        while len(self.running) < opts.workers and self.asked < opts.trials:
            if self.timed_out():
                return
            trial = self.study.ask()
            params = self.space.suggest(trial)
            self.asked += 1
            ref = self.task.remote(
                self.algorithm,
                self.folds,
                params=params,
                number=trial.number,
                options=opts,
                mailbox=self.mailbox,
            )
            self.running[ref] = trial
            self.by_number[trial.number] = trial

    def relay(self) -> None:
        """Epoch reports to the trials and the pruner's answers back."""
        for number, step, value in self.ray.get(self.mailbox.take.remote(POLL_S)):
            trial = self.by_number[number]
            trial.report(value, step)
            self.mailbox.decide.remote(number, step, bool(trial.should_prune()))

    def collect(self) -> None:
        ready, _ = self.ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
        for ref in ready:
            self.tell(self.running.pop(ref), self.ray.get(ref))

    def tell(self, trial: optuna.Trial, out: dict[str, Any]) -> None:
        for name in ("epochs", "seconds", "spread", "best_epoch", "error"):
            if out.get(name) is not None:
                trial.set_user_attr(name, out[name])
        if out["state"] == "complete":
            frozen = self.study.tell(trial, out["value"])
            if self.best is None or (out["value"], trial.number) < self.best[:2]:
                self.best = (out["value"], trial.number, out["model"])
        else:
            states = optuna.trial.TrialState
            state = states.PRUNED if out["state"] == "pruned" else states.FAIL
            frozen = self.study.tell(trial, state=state)
        record = _record(frozen)
        best = self.best_record
        if record.valid_logloss is not None and (
            best is None or record.valid_logloss < (best.valid_logloss or math.inf)
        ):
            self.best_record = record
        if self.on_trial is not None:
            self.on_trial(record, self.best_record)

    def run(self) -> None:
        try:
            while True:
                self.launch()
                if not self.running:
                    return
                self.relay()
                self.collect()
        finally:
            for ref in self.running:
                self.ray.cancel(ref, force=True)
            self.ray.kill(self.mailbox)


def run_search_ray(
    algorithm: str,
    folds: Sequence[FoldArrays],
    options: SearchOptions,
    ray: Any,
    *,
    on_trial: TrialCallback | None = None,
) -> TuneResult:
    """`search.run_search` with every trial a Ray task (`options.workers` at once, each
    reserving `options.threads` CPUs); see the module docstring."""
    options.check()
    if algorithm not in SPACES:
        raise TuningError(f"unknown algorithm {algorithm!r} (use ffm or lr)")
    if not folds:
        raise TuningError("no folds to tune on")
    _check_labels([f.fold() for f in folds])
    optuna.logging.set_verbosity(logging.WARNING)
    driver = _Driver(algorithm, folds, options, ray, on_trial)
    driver.run()
    seconds = time.perf_counter() - driver.start
    records = sorted((_record(t) for t in driver.study.trials), key=lambda r: r.number)
    if driver.best is None:
        errors = [r.error for r in records if r.error]
        why = f": {errors[0]}" if errors else ""
        raise TuningError(f"no trial of {len(records)} completed{why}")
    loss, number, blob = driver.best
    chosen = next(r for r in records if r.number == number)
    return TuneResult(
        algorithm=algorithm,
        params=chosen_params(chosen, options),
        valid_logloss=loss,
        model=_load(blob),
        trials=records,
        spread=chosen.spread or 0.0,
        folds=[f.name for f in folds],
        seconds=seconds,
    )
