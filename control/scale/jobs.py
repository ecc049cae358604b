"""One model's `control train` or `control retrain`, as a job that runs anywhere: in this
process, in a worker process of a pool, or in a Ray task. A job opens its own registry and
store from their URLs, reports progress as lines prefixed with the model's name, and returns
an `Outcome` instead of raising, so that one model's failure never stops another's.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from control.exits import EXIT_ALREADY_RUNNING, EXIT_ERROR
from control.scale.executor import running_ray


@dataclass(frozen=True)
class Outcome:
    """How one model's job ended (JSON-ready through `to_json`)."""

    model: str
    exit_code: int
    action: str  # trained, promoted, held, registered, noop, stopped, failed, ...
    detail: str
    version: int | None = None
    run_id: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class LineObserver:
    """A `control.training.Observer` printing one line per stage and epoch, prefixed with
    the model name (several models' progress interleaves readably)."""

    def __init__(self, model: str) -> None:
        self.prefix = f"[{model}]"

    def line(self, text: str) -> None:
        print(f"{self.prefix} {text}", file=sys.stderr, flush=True)

    def stage(self, name: str) -> None:
        self.line(name)

    def epoch(
        self, epoch: int, epochs: int, train_logloss: float, valid_logloss: float | None
    ) -> None:
        shown = f" valid {valid_logloss:.5f}" if valid_logloss is not None else ""
        self.line(f"epoch {epoch}/{epochs}: train {train_logloss:.5f}{shown}")

    def transfer(self, name: str, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass


@dataclass(frozen=True)
class TrainJob:
    """Everything `control train` needs for one model."""

    model: str
    data: tuple[str, ...]
    registry_url: str
    store_url: str
    executor: str = "local"
    valid: tuple[str, ...] = ()
    valid_fraction: float = 0.1
    algo: str | None = None
    explicit: dict[str, Any] = field(default_factory=dict)
    params_source: str = "saved"
    threads: int = 1
    seed: int = 0
    downsample: float | None = None
    key: str | None = None
    specs: str | None = None
    on_disk: bool = False  # train out of core from shards (control.scale.train)
    memory_budget: int | None = None
    warm_start: str | None = None  # a version number or alias to start from


def train_version(
    job: TrainJob, observer: Any, ray: Any | None = None, *, registry: Any | None = None
) -> Any:
    """Train, evaluate, profile and register one model (`ray`: prepare the data with Ray
    tasks and train from the shards). Returns the registered `Version`; raises on errors."""
    from bidscore.registry import open_registry  # noqa: PLC0415
    from bidscore.store import open_store  # noqa: PLC0415
    from control.training import model_spec, publish  # noqa: PLC0415
    from control.tuning.saved import layered, saved_for  # noqa: PLC0415
    from control.warm import load_parent  # noqa: PLC0415
    from features import catalog  # noqa: PLC0415

    reg = registry if registry is not None else open_registry(job.registry_url, create=True)
    artifacts = open_store(job.store_url)
    models = catalog.load(job.specs)
    saved = saved_for(reg, job.model, job.params_source)
    algo = job.algo or (saved or {}).get("algorithm") or model_spec(job.model, models).algorithm
    hyper, source = layered(algo, saved, job.explicit)
    with tempfile.TemporaryDirectory(prefix="bidscore-warm-") as workdir:
        init, parent_version = None, None
        if job.warm_start is not None:
            init, found = load_parent(
                reg, artifacts, job.model, job.warm_start, Path(workdir), catalog=models
            )
            parent_version = found.version
            observer.stage(f"warm start from {job.model} version {parent_version}")
        trained = _train(
            job,
            observer,
            ray,
            artifacts=artifacts,
            models=models,
            algo=algo,
            hyper=hyper,
            source=source,
            init=init,
            parent_version=parent_version,
        )  # fmt: skip
    return publish(trained, reg, artifacts, key=job.key, observer=observer)


def _train(
    job: TrainJob,
    observer: Any,
    ray: Any | None,
    *,
    artifacts: Any,
    models: Any,
    algo: str,
    hyper: dict[str, Any],
    source: str,
    init: Any | None,
    parent_version: str | None,
) -> Any:
    from control.training import load_data, model_spec, train_tables  # noqa: PLC0415

    common: dict[str, Any] = {
        "algo": algo,
        "params": hyper,
        "threads": job.threads,
        "seed": job.seed,
        "downsample": job.downsample,
        "observer": observer,
        "catalog": models,
        "params_source": source,
        "init": init,
        "parent_version": parent_version,
    }
    if ray is None and not job.on_disk:
        from control.prepared import choose_storage  # noqa: PLC0415

        observer.stage(f"reading {', '.join(job.data)}")
        loaded = load_data(
            job.model,
            job.data,
            valid_paths=job.valid,
            valid_fraction=job.valid_fraction,
            seed=job.seed,
            catalog=models,
        )
        storage = choose_storage(
            loaded.train,
            model_spec(job.model, models),
            on_disk=False,
            budget=job.memory_budget,
            extra_rows=loaded.valid.num_rows,
        )
        if not storage.on_disk:
            return train_tables(job.model, loaded, memory_budget=job.memory_budget, **common)
        observer.stage(f"preparing shards: {storage.reason}")
        del loaded
    # Prepared into shards, one per input file (Ray tasks, or here one file at a time) and
    # trained from them, in memory or out of core (control.scale.train): the same shards and
    # the same split rule on both executors, so the same model.
    from control.scale.prepare import cleanup, prepare  # noqa: PLC0415
    from control.scale.train import train_prepared  # noqa: PLC0415

    def say(line: str) -> None:
        observer.stage(line)

    prepared = prepare(job.data, job.model, store=artifacts, specs=job.specs, ray=ray, notify=say)
    valid = None
    try:
        if job.valid:
            valid = prepare(
                job.valid, job.model, store=artifacts, specs=job.specs, ray=ray, notify=say
            )
        return train_prepared(
            job.model,
            prepared,
            valid=valid,
            valid_fraction=job.valid_fraction,
            on_disk=job.on_disk,
            memory_budget=job.memory_budget,
            **common,
        )
    finally:
        cleanup(prepared, artifacts)
        if valid is not None:
            cleanup(valid, artifacts)


def _failure(model: str, exc: BaseException, started: float) -> Outcome:
    from control.retrain.lock import AlreadyRunningError  # noqa: PLC0415

    code = EXIT_ALREADY_RUNNING if isinstance(exc, AlreadyRunningError) else EXIT_ERROR
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return Outcome(model, code, "failed", detail, seconds=time.perf_counter() - started)


def train_job(job: TrainJob) -> Outcome:
    """`train_version` as a job: never raises, reports lines prefixed with the model."""
    started = time.perf_counter()
    observer = LineObserver(job.model)
    try:
        version = train_version(job, observer, running_ray(job.executor))
    except Exception as exc:
        observer.line(f"failed: {exc}")
        return _failure(job.model, exc, started)
    metrics = version.manifest.metrics
    detail = f"logloss {metrics.get('logloss', float('nan')):.5f} auc {metrics.get('auc', 0):.4f}"
    observer.line(f"registered version {version.version}: {detail}")
    return Outcome(
        job.model,
        0,
        "registered",
        detail,
        version=version.version,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class RetrainJob:
    """One model's retraining request and where its registry and store are."""

    request: Any  # control.retrain.pipeline.RetrainRequest
    registry_url: str
    store_url: str


def retrain_job(job: RetrainJob) -> Outcome:
    """`run_retrain` as a job: its own run record, lock, gates and promotion; never raises."""
    from bidscore.registry import open_registry  # noqa: PLC0415
    from bidscore.store import open_store  # noqa: PLC0415
    from control.retrain.pipeline import run_retrain  # noqa: PLC0415

    request = job.request
    started = time.perf_counter()
    observer = LineObserver(request.model)
    try:
        result = run_retrain(
            replace(request),
            open_registry(job.registry_url, create=True),
            open_store(job.store_url),
            notify=observer.line,
        )
    except Exception as exc:
        observer.line(f"failed: {exc}")
        return _failure(request.model, exc, started)
    run = result.run
    decision = run.get("decision") or {}
    observer.line(f"{decision.get('action', run.get('status'))}: {decision.get('reason', '')}")
    return Outcome(
        request.model,
        result.exit_code,
        str(decision.get("action") or run.get("status")),
        str(decision.get("reason", "")),
        version=run.get("version"),
        run_id=run.get("run_id"),
        seconds=time.perf_counter() - started,
    )
