"""ghz's JSON report (`-O json`) reduced to the numbers a scoring service is judged by."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from control.loadtest.errors import LoadTestError

NS_PER_MS = 1_000_000
OK_STATUS = "OK"


@dataclass(frozen=True)
class LoadReport:
    """One load test's outcome. Latencies are of successful calls, in milliseconds.

    `errors` maps a gRPC status name (`Unavailable`, `NotFound`, ...) to its count; it is empty
    when every call succeeded. Percentiles are None when no call succeeded.
    """

    qps: float
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    errors: dict[str, int]
    count: int
    ghz_version: str
    # ScoreStream runs (streamload): streams used; None for unary (ghz) runs.
    streams: int | None = None
    # Not part of the JSON contract: the most frequent error text, for the one-line failure.
    error_messages: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        """The `--json` document: exactly the keys the issue fixes (`streams` on stream runs)."""
        document: dict[str, Any] = {
            "qps": self.qps,
            "mean_ms": self.mean_ms,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "errors": dict(self.errors),
            "count": self.count,
            "ghz_version": self.ghz_version,
        }
        if self.streams is not None:
            document["streams"] = self.streams
        return document

    def first_error(self) -> str | None:
        """The most frequent error message, or None."""
        if not self.error_messages:
            return None
        return max(self.error_messages.items(), key=lambda item: item[1])[0]


def parse_ghz_report(text: str, ghz_version: str) -> LoadReport:
    """Read ghz's `-O json` output; durations there are Go nanoseconds."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadTestError(f"ghz printed no JSON report ({exc}): {text[:200]!r}") from exc
    if not isinstance(raw, dict) or "count" not in raw:
        raise LoadTestError(f"ghz's report has no 'count': {text[:200]!r}")
    count = int(raw["count"])
    statuses: dict[str, int] = raw.get("statusCodeDistribution") or {}
    errors = {status: int(n) for status, n in statuses.items() if status != OK_STATUS and n}
    percentiles = {
        int(item["percentage"]): _ms(item["latency"])
        for item in raw.get("latencyDistribution") or []
    }
    ok = count - sum(errors.values())
    return LoadReport(
        qps=float(raw.get("rps") or 0.0),
        # ghz averages over every call, failed ones included; with no success it means nothing.
        mean_ms=_ms(raw.get("average")) if ok > 0 else None,
        p50_ms=percentiles.get(50),
        p95_ms=percentiles.get(95),
        p99_ms=percentiles.get(99),
        errors=errors,
        count=count,
        ghz_version=ghz_version,
        error_messages={str(k): int(v) for k, v in (raw.get("errorDistribution") or {}).items()},
    )


def _ms(nanoseconds: Any) -> float | None:
    if nanoseconds is None:
        return None
    value = float(nanoseconds) / NS_PER_MS
    return value if math.isfinite(value) else None
