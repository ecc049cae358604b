"""Running experiments on the serving side: what a worker routes, counts, logs and shadows.

rust_core routes each request (`Scorer.score_request_routed`, `score_many`): for a model under
a running experiment it reads the experiment's key from the request context, computes
`bidscore.experiments.bucket(salt, value)` and scores with the arm's version. It hands back a
routing word, 3 bits per experiment in `Scorer.experiments` order (0: the request did not ask
for that model; `CONTROL`, `TREATMENT`, `KEY_MISSING` (answered by control), `SHADOWED`
(answered by control, the treatment scores it off the response path)). A request with no
experiment has routing 0 and costs nothing here.

`ExperimentTraffic.answered` runs on the event loop after a routed request is answered: it
counts the arms, samples the request for the prediction log (at the experiment sample rate)
with each model's experiment and arm, and hands a shadowed request to `ShadowScorer`, a
bounded queue and one thread that scores the treatment after the response has left and writes
both arms' scores to the log. A full queue drops the shadow work (counted), never the request.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import rust_core
from bidscore.experiments import Experiment
from bidscore.v1 import scorer_pb2
from pyserver.modelset import LoadedModel

if TYPE_CHECKING:
    from pyserver.metrics import Metrics
    from pyserver.modelset import ModelSet
    from pyserver.predlog import PredictionLog

log = logging.getLogger(__name__)

# Routing word codes (rust_core/src/serving/experiment.rs, ArmCode).
CONTROL = 1
TREATMENT = 2
KEY_MISSING = 3
SHADOWED = 4
ROUTE_BITS = 3
_MASK = (1 << ROUTE_BITS) - 1

# Shadowed requests waiting for the shadow thread; beyond it shadow work is dropped (counted).
DEFAULT_SHADOW_QUEUE = 1024


@dataclass(frozen=True)
class ServedExperiment:
    """A running experiment as one worker serves it: the treatment it loaded, or why not."""

    experiment: Experiment
    treatment: LoadedModel | None
    degraded: str | None = None  # the refusal reason when `treatment` is None

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.experiment.name, self.experiment.generation, self.experiment.treatment)


class Route:
    """One experiment of a model set, in routing-word order, with its metric children bound."""

    __slots__ = ("arms", "control", "experiment", "key_missing", "model", "treatment")

    def __init__(self, model: str, served: ServedExperiment, metrics: Metrics) -> None:
        self.model = model
        self.experiment = served.experiment.name
        self.treatment = served.treatment.version if served.treatment is not None else None
        counter = metrics.experiment_requests
        self.control = counter.labels(model=model, experiment=self.experiment, arm="control")
        treated = counter.labels(model=model, experiment=self.experiment, arm="treatment")
        self.key_missing = metrics.experiment_key_missing.labels(
            model=model, experiment=self.experiment
        )
        # code -> the counters it increments
        self.arms = {
            CONTROL: (self.control,),
            SHADOWED: (self.control,),
            TREATMENT: (treated,),
            KEY_MISSING: (self.control, self.key_missing),
        }


def scorer_experiments(
    served: Mapping[str, ServedExperiment],
) -> dict[str, tuple[str, str, str, str, float, tuple[rust_core.Model, str] | None]]:
    """The `experiments` argument of `rust_core.Scorer`."""
    out: dict[str, tuple[str, str, str, str, float, tuple[rust_core.Model, str] | None]] = {}
    for model, entry in served.items():
        e = entry.experiment
        treatment = entry.treatment
        out[model] = (
            e.name,
            e.mode,
            e.key,
            e.salt,
            e.share,
            (treatment.model, treatment.version) if treatment is not None else None,
        )
    return out


def routes_of(
    scorer: rust_core.Scorer, served: Mapping[str, ServedExperiment], metrics: Metrics
) -> tuple[Route, ...]:
    """The routes of `scorer`, in its routing-word order."""
    return tuple(Route(model, served[model], metrics) for model, _, _ in scorer.experiments)


# One model's experiment in a prediction-log record: (model, experiment, arm).
Arms = tuple[tuple[str, str, str], ...]


class ExperimentTraffic:
    """After a routed request is answered: count arms, log, hand shadow work over."""

    def __init__(
        self,
        metrics: Metrics,
        predlog: PredictionLog | None,
        shadow: ShadowScorer | None,
    ) -> None:
        self._metrics = metrics
        self._predlog = predlog
        self._shadow = shadow

    def answered(self, models: ModelSet, request: bytes, response: bytes, routing: int) -> None:
        arms: list[tuple[str, str, str]] = []
        shadowed = False
        for i, route in enumerate(models.routes):
            code = (routing >> (ROUTE_BITS * i)) & _MASK
            if not code:
                continue
            for counter in route.arms.get(code, ()):
                counter.inc()
            arms.append(
                (route.model, route.experiment, "treatment" if code == TREATMENT else "control")
            )
            shadowed = shadowed or code == SHADOWED
        if self._metrics.sample_scores():
            self._observe(response, arms)
        predlog = self._predlog
        if predlog is None or not predlog.sample(experiment=True):
            return
        if shadowed and self._shadow is not None:
            self._shadow.submit(models, request, response, tuple(arms))
        else:
            predlog.enqueue(request, response, experiments=tuple(arms))

    def _observe(self, response: bytes, arms: list[tuple[str, str, str]]) -> None:
        reply = scorer_pb2.ScoreResponse.FromString(response)
        observe_arms(self._metrics, reply, {m: (e, a) for m, e, a in arms})


def observe_arms(
    metrics: Metrics, reply: scorer_pb2.ScoreResponse, arms: Mapping[str, tuple[str, str]]
) -> None:
    """Scores of the experiment models of `reply` into `bidscore_experiment_score`."""
    for column, model in enumerate(reply.models):
        arm = arms.get(model.name)
        if arm is None:
            continue
        child = metrics.experiment_score.labels(
            model=model.name, experiment=arm[0], arm=arm[1], version=model.version
        )
        for candidate in reply.candidates:
            if column < len(candidate.scores):
                child.observe(candidate.scores[column])


_Job = tuple["ModelSet", bytes, bytes, Arms]


class ShadowScorer:
    """Scores shadowed requests with the treatment on one background thread, after their
    response has been handed to grpc, and writes both arms to the prediction log.

    The queue is bounded: when the thread falls behind, shadow work is dropped and counted
    (`bidscore_experiment_shadow_dropped_total{reason="queue_full"}`); the request itself was
    answered already. Create it in each worker after forking: it owns a thread.
    """

    def __init__(
        self,
        metrics: Metrics,
        predlog: PredictionLog,
        *,
        python_values: Callable[[bytes], dict[str, list[str | None]] | None] | None = None,
        queue_size: int = DEFAULT_SHADOW_QUEUE,
    ) -> None:
        self._metrics = metrics
        self._predlog = predlog
        self._python_values = python_values
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._dropped = {
            reason: metrics.experiment_shadow_dropped.labels(reason=reason)
            for reason in ("queue_full", "error", "shutdown")
        }
        self._thread = threading.Thread(target=self._run, name="bidscore-shadow", daemon=True)
        self._thread.start()

    def submit(self, models: ModelSet, request: bytes, response: bytes, arms: Arms) -> None:
        try:
            self._queue.put_nowait((models, request, response, arms))
        except queue.Full:
            self._dropped["queue_full"].inc()
            # The request is still logged, without the treatment's scores.
            self._predlog.enqueue(request, response, experiments=arms)

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            models, request, response, arms = job
            shadow: bytes | None = None
            try:
                values = self._python_values(request) if self._python_values else None
                shadow = models.scorer.score_shadow(request, values)
                if shadow is not None and self._metrics.sample_scores():
                    reply = scorer_pb2.ScoreResponse.FromString(shadow)
                    observe_arms(
                        self._metrics,
                        reply,
                        {m: (e, "treatment") for m, e, _ in arms},
                    )
            except Exception as exc:  # shadow work must never stop the thread
                self._dropped["error"].inc()
                log.warning("shadow scoring failed: %s", exc)
            self._predlog.enqueue(request, response, experiments=arms, shadow=shadow)


def describe(served: Mapping[str, ServedExperiment]) -> str:
    """`ctr: exp1 (ab 10% on user_id, control 3 / treatment 7)` for the log."""
    parts = []
    for model, entry in sorted(served.items()):
        e = entry.experiment
        treatment = e.treatment if entry.treatment is not None else f"{e.treatment} NOT LOADED"
        parts.append(
            f"{model}: {e.name} ({e.mode} {e.share:.0%} on {e.key}, control {e.control} /"
            f" treatment {treatment})"
        )
    return "; ".join(parts) or "none"
