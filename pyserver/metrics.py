"""Prometheus metrics of one worker process.

Multi-worker choice: every worker serves its own registry on its own port
(`--metrics-port + worker index`), rather than prometheus_client's multiprocess mode. Each
worker is then a plain scrape target (label it by port or pod), every metric type works
(multiprocess mode cannot serve Info metrics or callback gauges such as "seconds since the last
reload"), and there is no shared directory of mmap files to clean up after a crash.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Latency buckets around the target (mean <= 5 ms, p95 <= 10 ms).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
CANDIDATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000)

# Why a reload attempt failed: an outage is retried with backoff, the rest refuse the version.
OUTAGE = "outage"
# A served model's cached file changed on disk (written or truncated in place); reloaded.
CACHE_CHANGED = "cache_changed"
# The alias points at a version the registry does not have: refused like a bad artifact
# (logged with model, alias and version; retried when the alias moves), never an outage.
MISSING_VERSION = "missing_version"
REFUSED_REASONS = ("checksum", "fingerprint", "format", "warmup", "manifest", MISSING_VERSION)


class Metrics:
    """All metrics of a worker, in a private registry (several servers may share a process
    in tests, and a private registry keeps their numbers apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.latency = Histogram(
            "bidscore_request_seconds",
            "Score RPC latency in the handler (parse, tokenise, score, serialise).",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._requests = Counter(
            "bidscore_requests",
            "Score RPCs by gRPC status code.",
            ["code"],
            registry=reg,
        )
        # Children bound once: `labels()` is a dict lookup under a lock on every call.
        self.requests_by_code = {
            code: self._requests.labels(code=code.name) for code in grpc.StatusCode
        }
        self.candidates = Histogram(
            "bidscore_candidates_per_request",
            "Candidates per successfully scored request.",
            buckets=CANDIDATE_BUCKETS,
            registry=reg,
        )
        self.served = Info(
            "bidscore_served_model",
            "The version of each model this worker serves.",
            ["model"],
            registry=reg,
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
        self._refused = Gauge(
            "bidscore_refused_artifact",
            "1 for each model whose alias points at an artifact this worker refused (and is "
            "retrying with backoff), labelled with the version and the reason.",
            ["model", "version", "reason"],
            registry=reg,
        )
        self._refused_labels: dict[tuple[str, str], str] = {}
        self.ready = Gauge(
            "bidscore_ready", "1 when every model is loaded and warmed, else 0.", registry=reg
        )
        self._last_reload = time.monotonic()
        self._reloaded_once = False
        self._served_versions: dict[str, str] = {}
        since = Gauge(
            "bidscore_seconds_since_last_reload",
            "Seconds since the last successful reload (since start-up before the first one).",
            registry=reg,
        )
        since.set_function(lambda: time.monotonic() - self._last_reload)

    def reload_succeeded(self, versions: dict[str, str], changed: list[str]) -> None:
        self._last_reload = time.monotonic()
        self._served_versions = dict(versions)
        for name in changed:
            self.reload_successes.labels(model=name).inc()
        for name, version in versions.items():
            self.served.labels(model=name).info({"version": version})

    def reload_failed(self, model: str, reason: str) -> None:
        self.reload_failures.labels(model=model, reason=reason).inc()

    def health_details(self) -> dict[str, Any]:
        """What `GET /health` on the metrics port shows: the gRPC health protocol has only
        SERVING/NOT_SERVING, an operator also wants to see why a version is not served."""
        ready = self.registry.get_sample_value("bidscore_ready")
        return {
            "ready": ready == 1,
            "served": dict(self._served_versions),
            "refused": [
                {"model": model, "version": version, "reason": reason}
                for (model, version), reason in sorted(self._refused_labels.items())
            ],
            "seconds_since_last_reload": round(time.monotonic() - self._last_reload, 3),
        }

    def refused_now(self, model: str, version: str, reason: str) -> None:
        old = self._refused_labels.get((model, version))
        if old is not None and old != reason:
            self._refused.remove(model, version, old)
        self._refused_labels[(model, version)] = reason
        self._refused.labels(model=model, version=version, reason=reason).set(1)

    def refused_cleared(self, model: str, version: str) -> None:
        reason = self._refused_labels.pop((model, version), None)
        if reason is not None:
            self._refused.remove(model, version, reason)
