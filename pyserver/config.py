"""The scoring server's settings: one frozen dataclass, validated once at start-up."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bidscore import settings
from features import catalog
from pyserver.errors import ConfigError

if TYPE_CHECKING:
    from pyserver.tls import TlsFiles

DEFAULT_MODELS = ("ctr", "cvr")
# Per-request limits. The wire limit (grpc's max receive size) sits above the request limit so
# that a merely oversized request reaches the handler and gets INVALID_ARGUMENT with its size,
# while a truly enormous one is cut off by the transport before it is buffered.
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
TRANSPORT_SLACK = 4
DEFAULT_MAX_CANDIDATES = 1000
# Entries of a request's `models` list: each adds a score per candidate to the response.
DEFAULT_MAX_MODELS = 16


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 1
    models: tuple[str, ...] = DEFAULT_MODELS
    # `module:attribute` naming a dict of ModelSpec: the feature code this server trusts.
    specs: str = dataclasses.field(default_factory=catalog.default_ref)
    # The alias every model follows (`production`), or one per model (`ctr=canary,cvr=production`;
    # a model not named follows settings.DEFAULT_ALIAS): see `aliases`.
    alias: str = settings.DEFAULT_ALIAS
    poll_interval: float = 2.0
    # Upper bound of the exponential backoff while the registry or the store is unreachable.
    max_backoff: float = 30.0
    # First retry of an artifact the server refused (doubling, up to 10 min): the bytes behind
    # its URI may be repaired. Moving the alias always retries at once.
    refused_retry_seconds: float = 30.0
    registry_url: str = dataclasses.field(default_factory=settings.default_registry_url)
    store_url: str = dataclasses.field(default_factory=settings.default_store_url)
    cache_dir: Path = dataclasses.field(
        default_factory=lambda: settings.bidscore_home() / "serve-cache"
    )
    max_concurrent_rpcs: int | None = None
    metrics_port: int = 0
    # Share of calls whose scores feed the bidscore_score histogram (parsing the reply costs).
    score_sample_rate: float = 0.01
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_candidates: int = DEFAULT_MAX_CANDIDATES
    max_models: int = DEFAULT_MAX_MODELS
    # Requests with more work than this many candidates scored by every served model
    # (candidates x requested models) are scored on a thread (0 = always inline).
    offload_candidates: int = 64
    # ScoreStream: messages read but not yet answered, per stream (backpressure beyond).
    stream_max_in_flight: int = 256
    grace_seconds: float = 10.0
    # Refuse (INVALID_ARGUMENT) a request carrying a feature key the schema does not define;
    # off, such keys are only counted (bidscore_unknown_features_total, sampled).
    strict_features: bool = False
    # Context keys that are not features but expected (experiment keys, e.g. the generator's
    # user_id): neither counted as unknown nor refused. A running experiment's key always is.
    context_keys: tuple[str, ...] = ("user_id",)
    log_level: str = "INFO"
    # Sampled prediction log (pyserver.predlog): a directory or s3:// prefix; None = off.
    predlog: str | None = None
    predlog_sample_rate: float = 0.01
    # Requests for a model under a running experiment; None = predlog_sample_rate. 1 logs every
    # one (tests, small experiments): shadow scores reach only the log.
    predlog_experiment_sample_rate: float | None = None
    # Shadowed requests waiting for the shadow-scoring thread; beyond it shadow work is dropped.
    shadow_queue: int = 1024
    predlog_features: bool = False
    # TLS on the scoring port (pyserver.tls): both or neither; a client CA turns on mTLS.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None

    def __post_init__(self) -> None:
        # Imported here: the settings must load without grpc (the base install's CLI).
        from pyserver.limits import response_bound  # noqa: PLC0415

        checks: list[tuple[bool, str]] = [
            (
                (self.tls_cert is None) == (self.tls_key is None),
                "--tls-cert and --tls-key go together",
            ),
            (
                self.tls_client_ca is None or self.tls_cert is not None,
                "--tls-client-ca needs --tls-cert and --tls-key",
            ),
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
            (self._alias_error() is None, self._alias_error() or ""),
            (":" in self.specs, f"--specs must look like module:attribute, got {self.specs!r}"),
            (self.poll_interval > 0, f"--poll-interval must be > 0, got {self.poll_interval}"),
            (self.max_backoff >= self.poll_interval, "max backoff must be >= --poll-interval"),
            (
                self.refused_retry_seconds > 0,
                f"--refused-retry must be > 0, got {self.refused_retry_seconds}",
            ),
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
            (self.max_models >= 1, f"--max-models must be at least 1, got {self.max_models}"),
            (
                response_bound(self.max_request_bytes, self.max_candidates, self.max_models)
                <= self.transport_max_bytes,
                "--max-candidates x --max-models scores do not fit in a response of "
                f"{self.transport_max_bytes} bytes (4 x --max-request-bytes)",
            ),
            (
                self.offload_candidates >= 0,
                f"--offload-candidates must be >= 0, got {self.offload_candidates}",
            ),
            (
                0 <= self.score_sample_rate <= 1,
                f"--score-sample-rate must be in [0, 1], got {self.score_sample_rate}",
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
            (
                self.predlog_experiment_sample_rate is None
                or 0 <= self.predlog_experiment_sample_rate <= 1,
                "--predlog-experiment-sample-rate must be in [0, 1], got "
                f"{self.predlog_experiment_sample_rate}",
            ),
            (self.shadow_queue >= 1, f"shadow queue must be at least 1, got {self.shadow_queue}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def aliases(self) -> dict[str, str]:
        """The alias each served model follows."""
        return parse_aliases(self.alias, self.models)

    def alias_of(self, model: str) -> str:
        return self.aliases.get(model, settings.DEFAULT_ALIAS)

    def _alias_error(self) -> str | None:
        try:
            parse_aliases(self.alias, self.models)
        except ConfigError as exc:
            return str(exc)
        return None

    @property
    def tls(self) -> TlsFiles | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        from pyserver.tls import TlsFiles  # noqa: PLC0415 -- grpc only when serving

        return TlsFiles(self.tls_cert, self.tls_key, self.tls_client_ca)

    @property
    def loopback(self) -> bool:
        """True when only this machine can reach the port."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def transport_max_bytes(self) -> int:
        return self.max_request_bytes * TRANSPORT_SLACK


def parse_models(text: str) -> tuple[str, ...]:
    """`"ctr, cvr"` -> `("ctr", "cvr")`."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_aliases(text: str, models: tuple[str, ...]) -> dict[str, str]:
    """`--alias`: `production` (every model) or `ctr=canary,cvr=production` (per model; a model
    not named follows settings.DEFAULT_ALIAS). ConfigError names what is wrong."""
    if "=" not in text:
        alias = text.strip()
        if "," in alias or not alias:
            raise ConfigError(
                f"--alias must be one alias (production) or model=alias pairs"
                f" (ctr=canary,cvr=production), got {text!r}"
            )
        return dict.fromkeys(models, alias)
    out = dict.fromkeys(models, settings.DEFAULT_ALIAS)
    seen: set[str] = set()
    for part in text.split(","):
        model, sep, alias = (x.strip() for x in part.partition("="))
        if not sep or not model or not alias:
            raise ConfigError(f"--alias: {part.strip()!r} is not model=alias (e.g. ctr=canary)")
        if model not in models:
            raise ConfigError(
                f"--alias names {model!r}, which is not served (--models {','.join(models)})"
            )
        if model in seen:
            raise ConfigError(f"--alias names {model!r} twice")
        seen.add(model)
        out[model] = alias
    return out
