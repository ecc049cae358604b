"""Prometheus metrics of the scoring server, named as stock gRPC dashboards expect.

gRPC calls follow grpc-prometheus (`grpc_server_started_total`, `grpc_server_handled_total`
with `grpc_code`, the `grpc_server_handling_seconds` histogram); bidscore's own metrics carry
the `bidscore_` prefix. Every Score call is counted once under the code the client saw,
including calls refused before any work (draining, over the concurrency limit, deadline
already expired) and calls that end while in flight (cancelled, deadline exceeded).

One scrape endpoint per server: with one worker the worker serves its own registry (with the
process and Python collectors); with several, the workers write prometheus_client's
multiprocess files into one directory and the supervisor serves their aggregate
(`pyserver.metrics_endpoint`). Gauges therefore say how workers combine (`multiprocess_mode`),
and there are no callback gauges or Info metrics (multiprocess mode has neither): the time of
the last reload is a timestamp, the served versions an info-style gauge.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

# Latency buckets around the target (mean <= 5 ms, p95 <= 10 ms).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
CANDIDATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000)
# CTR and CVR scores sit mostly between 0.1% and 20%: log-spaced buckets.
SCORE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)

# Why a reload attempt failed: an outage is retried with backoff, the rest refuse the version.
OUTAGE = "outage"
# A served model's cached file changed on disk (written or truncated in place); reloaded.
CACHE_CHANGED = "cache_changed"
# The alias points at a version the registry does not have: refused like a bad artifact
# (logged with model, alias and version; retried when the alias moves), never an outage.
MISSING_VERSION = "missing_version"
REFUSED_REASONS = ("checksum", "fingerprint", "format", "warmup", "manifest", MISSING_VERSION)

GRPC_SERVICE = "bidscore.v1.Scorer"
UNARY = "unary"


def grpc_code_name(code: grpc.StatusCode) -> str:
    """`DEADLINE_EXCEEDED` -> `DeadlineExceeded`: grpc-prometheus (Go) spells codes this way."""
    return "".join(part.capitalize() for part in code.name.split("_")).replace("Ok", "OK")


def _timestamp(text: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Metrics:
    """All metrics of one worker, in a private registry (tests run several servers in one
    process). With `process_collectors`, the registry also reports the process and Python
    runtime (single-worker servers; the supervisor reports its own with several)."""

    def __init__(self, *, process_collectors: bool = False, score_sample_rate: float = 0.1) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        if process_collectors:
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                reg.register(collector)
        labels = ["grpc_service", "grpc_method", "grpc_type"]
        self._started = Counter(
            "grpc_server_started", "RPCs started on the server.", labels, registry=reg
        )
        self._handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by the status code the client saw.",
            [*labels, "grpc_code"],
            registry=reg,
        )
        self._handling = Histogram(
            "grpc_server_handling_seconds",
            "Time to answer an RPC in the server (parse, tokenise, score, serialise).",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        score_method = (GRPC_SERVICE, "Score", UNARY)
        # Children bound once: `labels()` is a dict lookup under a lock on every call.
        self.started = self._started.labels(*score_method)
        self.requests_by_code = {
            code: self._handled.labels(*score_method, grpc_code_name(code))
            for code in grpc.StatusCode
        }
        self.latency = self._handling.labels(*score_method)
        # ScoreStream: the stream calls in grpc-prometheus terms (bidi_stream), and each
        # message answered on them, by the code of its per-message error (OK when scored).
        stream_method = (GRPC_SERVICE, "ScoreStream", "bidi_stream")
        self.streams_started = self._started.labels(*stream_method)
        self.streams_by_code = {
            code: self._handled.labels(*stream_method, grpc_code_name(code))
            for code in grpc.StatusCode
        }
        self._stream_messages = Counter(
            "bidscore_stream_messages",
            "ScoreStream messages answered, by the code of their per-message error.",
            ["grpc_code"],
            registry=reg,
        )
        self.stream_messages_by_code = {
            code: self._stream_messages.labels(grpc_code_name(code)) for code in grpc.StatusCode
        }
        self.stream_latency = Histogram(
            "bidscore_stream_message_seconds",
            "Time from reading a ScoreStream message to writing its answer.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.inflight = Gauge(
            "bidscore_inflight_requests",
            "Score calls being handled now (the autoscaling signal).",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.candidates = Histogram(
            "bidscore_candidates_per_request",
            "Candidates per successfully scored request.",
            buckets=CANDIDATE_BUCKETS,
            registry=reg,
        )
        self.score = Histogram(
            "bidscore_score",
            "Scores returned, per model and version (a sample of the calls: "
            "--score-sample-rate), the first signal of a broken model.",
            ["model", "version"],
            buckets=SCORE_BUCKETS,
            registry=reg,
        )
        self.score_sample_rate = score_sample_rate
        self.model_info = Gauge(
            "bidscore_model_info",
            "1 for each model version this server serves, with the alias it follows.",
            ["model", "version", "alias"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.alias_target = Gauge(
            "bidscore_alias_target_info",
            "1 for the version each followed alias points at in the registry (last poll).",
            ["model", "alias", "version"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.last_reload = Gauge(
            "bidscore_model_last_reload_timestamp_seconds",
            "Unix time of the last successful load of each model.",
            ["model"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.created = Gauge(
            "bidscore_model_created_timestamp_seconds",
            "Unix time at which each served model version was trained (its manifest).",
            ["model", "version"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.reload_successes = Counter(
            "bidscore_reload_successes",
            "Model versions loaded, verified, warmed up and swapped in.",
            ["model"],
            registry=reg,
        )
        # Completed polls of the alias pointers, whatever their outcome: lets an operator (and
        # a test) tell "nothing changed" from "has not looked yet".
        self.polls = Counter(
            "bidscore_registry_polls",
            "Polls of the registry alias pointers (successful or not).",
            registry=reg,
        )
        self.reload_failures = Counter(
            "bidscore_reload_failures",
            "Reload attempts that failed: outage (registry/store unreachable, retried) or a "
            "refused artifact (checksum, fingerprint, format, manifest, warmup), an alias "
            "pointing at a version that is not registered (missing_version), or a served "
            "model's cached file changed on disk (cache_changed, reloaded).",
            ["model", "reason"],
            registry=reg,
        )
        self.ready = Gauge(
            "bidscore_ready",
            "1 when every model is loaded and warmed, else 0 (with several workers: one series "
            "per worker, labelled pid).",
            registry=reg,
            multiprocess_mode="liveall",
        )
        self._refused = Gauge(
            "bidscore_refused_artifact",
            "1 for each model whose alias points at an artifact this worker refused (and is "
            "retrying with backoff), labelled with the version and the reason.",
            ["model", "version", "reason"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        # Experiments (pyserver/experiments.py): requests and scores per arm, requests
        # without the experiment's key, a treatment this worker could not load, shadow work
        # dropped.
        self.experiment_requests = Counter(
            "bidscore_experiment_requests",
            "Requests for a model under a running experiment, by the arm that answered them "
            "(shadow: control; requests without the key: control).",
            ["model", "experiment", "arm"],
            registry=reg,
        )
        self.experiment_key_missing = Counter(
            "bidscore_experiment_key_missing",
            "Requests for a model under a running experiment without (or with an empty) value "
            "for the experiment's context key: answered by control.",
            ["model", "experiment"],
            registry=reg,
        )
        self.experiment_score = Histogram(
            "bidscore_experiment_score",
            "Scores of models under an experiment, per arm and version (a sample of the calls: "
            "--score-sample-rate; shadow treatment scores from the shadowed calls logged).",
            ["model", "experiment", "arm", "version"],
            buckets=SCORE_BUCKETS,
            registry=reg,
        )
        self.experiment_degraded = Gauge(
            "bidscore_experiment_degraded",
            "1 while a running experiment's treatment cannot be loaded (every request is "
            "answered by control), else 0.",
            ["model", "experiment"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.experiment_shadow_dropped = Counter(
            "bidscore_experiment_shadow_dropped",
            "Shadow scorings not done: queue_full (the shadow thread fell behind), error, "
            "shutdown. The request itself was answered and logged.",
            ["reason"],
            registry=reg,
        )
        self._refused_labels: dict[tuple[str, str], str] = {}
        self._served: dict[str, tuple[str, str]] = {}  # model -> (version, alias) shown
        self._last_reload = time.monotonic()

    def declare_models(self, models: Iterable[str]) -> None:
        """Create every reload-failure series at 0, so alert rules see them before a failure."""
        for name in models:
            for reason in (OUTAGE, *REFUSED_REASONS):
                self.reload_failures.labels(model=name, reason=reason)
        self.reload_failures.labels(model="*", reason=OUTAGE)

    def alias_targets(self, alias: str | Mapping[str, str], wanted: Mapping[str, str]) -> None:
        for name, version in wanted.items():
            followed = alias if isinstance(alias, str) else alias.get(name, "")
            self.alias_target.labels(model=name, alias=followed, version=version).set(1)

    def reload_succeeded(
        self,
        versions: Mapping[str, str],
        changed: list[str],
        *,
        alias: str | Mapping[str, str] = "",
        created: Mapping[str, str] | None = None,
    ) -> None:
        now = time.time()
        self._last_reload = time.monotonic()
        for name in changed:
            self.reload_successes.labels(model=name).inc()
            self.last_reload.labels(model=name).set(now)
        for name, version in versions.items():
            followed = alias if isinstance(alias, str) else alias.get(name, "")
            previous = self._served.get(name)
            if previous == (version, followed):
                continue
            if previous is not None:
                # Multiprocess mode cannot remove a series: the old version drops to 0.
                self.model_info.labels(model=name, version=previous[0], alias=previous[1]).set(0)
            self.model_info.labels(model=name, version=version, alias=followed).set(1)
            self._served[name] = (version, followed)
            stamp = _timestamp((created or {}).get(name, ""))
            if stamp is not None:
                self.created.labels(model=name, version=version).set(stamp)

    def reload_failed(self, model: str, reason: str) -> None:
        self.reload_failures.labels(model=model, reason=reason).inc()

    def health_details(self) -> dict[str, Any]:
        """What `GET /health` on the metrics port shows: the gRPC health protocol has only
        SERVING/NOT_SERVING, an operator also wants to see why a version is not served."""
        ready = self.registry.get_sample_value("bidscore_ready")
        return {
            "ready": ready == 1,
            "served": {name: version for name, (version, _) in self._served.items()},
            "refused": [
                {"model": model, "version": version, "reason": reason}
                for (model, version), reason in sorted(self._refused_labels.items())
            ],
            "seconds_since_last_reload": round(time.monotonic() - self._last_reload, 3),
        }

    def refused_now(self, model: str, version: str, reason: str) -> None:
        old = self._refused_labels.get((model, version))
        if old is not None and old != reason:
            self._drop_refused(model, version, old)
        self._refused_labels[(model, version)] = reason
        self._refused.labels(model=model, version=version, reason=reason).set(1)

    def refused_cleared(self, model: str, version: str) -> None:
        reason = self._refused_labels.pop((model, version), None)
        if reason is not None:
            self._drop_refused(model, version, reason)

    def _drop_refused(self, model: str, version: str, reason: str) -> None:
        # 0 first: in multiprocess mode the value file outlives remove().
        self._refused.labels(model=model, version=version, reason=reason).set(0)
        self._refused.remove(model, version, reason)

    def sample_scores(self) -> bool:
        """Whether this call's scores go into the `bidscore_score` histogram."""
        return self.score_sample_rate > 0 and random.random() < self.score_sample_rate

    def observe_scores(self, names: list[tuple[str, str]], rows: Iterable[Iterable[float]]) -> None:
        children = [self.score.labels(model=m, version=v) for m, v in names]
        for row in rows:
            for child, value in zip(children, row, strict=False):
                child.observe(value)
