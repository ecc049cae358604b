"""The scoring server's settings: one frozen dataclass, validated once at start-up."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from bidscore import settings
from features import catalog
from pyserver.errors import ConfigError

DEFAULT_MODELS = ("ctr", "cvr")
# Per-request limits. The wire limit (grpc's max receive size) sits above the request limit so
# that a merely oversized request reaches the handler and gets INVALID_ARGUMENT with its size,
# while a truly enormous one is cut off by the transport before it is buffered.
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
TRANSPORT_SLACK = 4
DEFAULT_MAX_CANDIDATES = 1000


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 1
    models: tuple[str, ...] = DEFAULT_MODELS
    # `module:attribute` naming a dict of ModelSpec: the feature code this server trusts.
    specs: str = dataclasses.field(default_factory=catalog.default_ref)
    alias: str = "production"
    poll_interval: float = 2.0
    # Upper bound of the exponential backoff while the registry or the store is unreachable.
    max_backoff: float = 30.0
    registry_url: str = dataclasses.field(default_factory=settings.default_registry_url)
    store_url: str = dataclasses.field(default_factory=settings.default_store_url)
    cache_dir: Path = dataclasses.field(
        default_factory=lambda: settings.bidscore_home() / "serve-cache"
    )
    max_concurrent_rpcs: int | None = None
    metrics_port: int = 0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_candidates: int = DEFAULT_MAX_CANDIDATES
    # Requests with more candidates than this are scored on a thread (0 = always inline).
    offload_candidates: int = 64
    # ScoreStream: messages read but not yet answered, per stream (backpressure beyond).
    stream_max_in_flight: int = 256
    grace_seconds: float = 10.0
    log_level: str = "INFO"
    # Sampled prediction log (pyserver.predlog): a directory or s3:// prefix; None = off.
    predlog: str | None = None
    predlog_sample_rate: float = 0.01
    predlog_features: bool = False

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (0 <= self.port <= 65535, f"--port must be in 0..65535, got {self.port}"),
            (self.workers >= 1, f"--workers must be at least 1, got {self.workers}"),
            (
                self.workers == 1 or self.port != 0,
                "--port 0 (any free port) cannot be shared by several --workers",
            ),
            (len(self.models) > 0, "--models must name at least one model"),
            (all(m.strip() for m in self.models), "--models has an empty model name"),
            (len(set(self.models)) == len(self.models), "--models names a model twice"),
            (bool(self.alias), "--alias must not be empty"),
            (":" in self.specs, f"--specs must look like module:attribute, got {self.specs!r}"),
            (self.poll_interval > 0, f"--poll-interval must be > 0, got {self.poll_interval}"),
            (self.max_backoff >= self.poll_interval, "max backoff must be >= --poll-interval"),
            (
                self.max_concurrent_rpcs is None or self.max_concurrent_rpcs >= 1,
                f"--max-concurrent-rpcs must be at least 1, got {self.max_concurrent_rpcs}",
            ),
            (
                0 <= self.metrics_port <= 65535,
                f"--metrics-port must be in 0..65535 (0 = off), got {self.metrics_port}",
            ),
            (
                self.max_request_bytes >= 1024,
                f"--max-request-bytes must be at least 1024, got {self.max_request_bytes}",
            ),
            (
                self.max_candidates >= 1,
                f"--max-candidates must be at least 1, got {self.max_candidates}",
            ),
            (
                self.offload_candidates >= 0,
                f"--offload-candidates must be >= 0, got {self.offload_candidates}",
            ),
            (
                self.stream_max_in_flight >= 1,
                f"--stream-max-in-flight must be at least 1, got {self.stream_max_in_flight}",
            ),
            (self.grace_seconds >= 0, f"--grace must be >= 0, got {self.grace_seconds}"),
            (
                0 <= self.predlog_sample_rate <= 1,
                f"--predlog-sample-rate must be in [0, 1], got {self.predlog_sample_rate}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def transport_max_bytes(self) -> int:
        return self.max_request_bytes * TRANSPORT_SLACK

    def metrics_port_for(self, worker: int) -> int:
        """Each worker serves its own metrics on `metrics_port + worker` (0 stays off)."""
        return self.metrics_port + worker if self.metrics_port else 0


def parse_models(text: str) -> tuple[str, ...]:
    """`"ctr, cvr"` -> `("ctr", "cvr")`."""
    return tuple(part.strip() for part in text.split(",") if part.strip())
