"""Per-arm failure counts from a scoring server's Prometheus metrics, for the canary's
error-rate guardrail (the prediction log holds answered requests only, never failures).

Read from the text exposition at `--metrics-url`: every counter sample that carries the labels
`model`, `arm` and `grpc_code` (the server's per-arm request counter,
`bidscore_experiment_requests_total{model, version, arm, grpc_code}`) is summed per arm; a
sample whose `grpc_code` is not `OK` is a failure. When the URL answers without such samples,
or does not answer, the guardrail is reported as not evaluated: a failure rate is never
guessed.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ArmErrors:
    requests: dict[str, float]  # arm -> requests answered (every code)
    failures: dict[str, float]  # arm -> requests not answered OK

    def rate(self, arm: str) -> float:
        total = self.requests.get(arm, 0.0)
        return self.failures.get(arm, 0.0) / total if total else float("nan")


def arm_errors_from_text(text: str, model: str) -> ArmErrors | None:
    """Per-arm counts of `model` in a metrics exposition, or None if it has none."""
    requests: dict[str, float] = {}
    failures: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "counter":
            continue
        for sample in family.samples:
            labels = sample.labels
            if not sample.name.endswith("_total") or labels.get("model") != model:
                continue
            arm, code = labels.get("arm"), labels.get("grpc_code")
            if arm is None or code is None:
                continue
            requests[arm] = requests.get(arm, 0.0) + sample.value
            if code != "OK":
                failures[arm] = failures.get(arm, 0.0) + sample.value
    return ArmErrors(requests, failures) if requests else None


def fetch_arm_errors(url: str, model: str) -> tuple[ArmErrors | None, str]:
    """(counts, why not) from a live `/metrics` URL."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, f"metrics at {url} unreachable ({exc})"
    counts = arm_errors_from_text(text, model)
    if counts is None:
        return None, f"metrics at {url} carry no per-arm request counts of {model}"
    return counts, ""
