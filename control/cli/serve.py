"""`control serve`: build a `pyserver.config.ServerConfig` from the options and hand it to the
server's plain entry point (`pyserver.workers.run_server`). The server knows nothing of this CLI.

Every default is the `ServerConfig` field's own (`default_of`), so the two cannot disagree.

Before starting, the registry is asked which models have the alias: the others are reported
once, each with the command that fixes it, and the server serves the rest (it picks a model
up as soon as its alias is set); with none at all, there is nothing to serve and it refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bidscore import settings
from bidscore.errors import BidscoreError
from bidscore.registry import Registry, open_registry
from control.cli.defaults import default_of
from control.cli.options import RegistryOpt, SpecsOpt, StoreOpt, registry_url, store_url
from control.cli.output import needs_extra
from pyserver.config import ServerConfig, parse_models
from pyserver.errors import ConfigError
from pyserver.logs import LOG_FORMATS
from pyserver.logs import configure as configure_logs

_C = ServerConfig


def fix_command(registry: Registry, model: str, config: ServerConfig) -> str:
    """The command(s) that give `model` the alias: promote its latest version, or train one
    first; with the server's --registry/--store when they are not the defaults, so the
    command works pasted as it is."""
    backends = "".join(
        f" {option} {url}"
        for option, url, default in (
            ("--registry", config.registry_url, settings.default_registry_url()),
            ("--store", config.store_url, settings.default_store_url()),
        )
        if url != default
    )
    alias = config.alias_of(model)
    flags = "" if alias == settings.DEFAULT_ALIAS else f" --alias {alias} --create-alias"
    versions = registry.list_versions(model)
    if versions:
        return f"`control promote {model} {versions[-1].version}{flags}{backends}`"
    return (
        f"`control train --model {model} --data LOGS{backends}` then"
        f" `control promote {model} 1{flags}{backends}`"
    )


def report_missing_aliases(config: ServerConfig) -> None:
    """Warn once per served model without the alias, with its fix; ConfigError if no model
    has it (there would be nothing to serve)."""
    missing = missing_aliases(config)
    if len(missing) == len(config.models):
        followed = set(config.aliases.values())
        if len(followed) == 1:
            fixes = "; ".join(f"{m}: run {cmd}" for m, cmd in missing.items())
            raise ConfigError(f"no model has a {followed.pop()!r} alias, nothing to serve: {fixes}")
        fixes = "; ".join(
            f"{m}: alias {config.alias_of(m)!r} is not set, run {cmd}" for m, cmd in missing.items()
        )
        raise ConfigError(f"no model has its alias, nothing to serve: {fixes}")
    for model, command in missing.items():
        typer.echo(
            f"warning: {model} has no {config.alias_of(model)!r} alias: run {command}; serving"
            f" {', '.join(m for m in config.models if m not in missing)} meanwhile",
            err=True,
        )


def missing_aliases(config: ServerConfig) -> dict[str, str]:
    """Each served model without the alias, with the command that fixes it. An unreachable
    registry reports nothing: the server itself retries it."""
    try:
        registry = open_registry(config.registry_url)
        return {
            model: fix_command(registry, model, config)
            for model in config.models
            if registry.get_alias(model, config.alias_of(model)) is None
        }
    except BidscoreError:
        return {}


def serve(  # noqa: PLR0917 -- one parameter per CLI option; Typer passes them by name
    host: Annotated[str, typer.Option(help="Address to listen on.")] = default_of(_C, "host"),
    port: Annotated[int, typer.Option(help="gRPC port (shared by every worker).")] = default_of(
        _C, "port"
    ),
    workers: Annotated[
        int, typer.Option(help="Worker processes sharing the port with SO_REUSEPORT.")
    ] = default_of(_C, "workers"),
    models: Annotated[
        str, typer.Option(help="Comma-separated models to serve (names in --specs).")
    ] = ",".join(default_of(_C, "models")),
    specs: SpecsOpt = None,
    alias: Annotated[
        str,
        typer.Option(
            help="Registry alias the models follow: one for all (production) or per model "
            "(ctr=canary,cvr=production; a model not named follows production)."
        ),
    ] = default_of(_C, "alias"),
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between polls of the alias pointers.")
    ] = default_of(_C, "poll_interval"),
    refused_retry: Annotated[
        float,
        typer.Option(
            help="Seconds before a refused artifact is tried again (doubling, up to 10 min); "
            "an alias move retries at once."
        ),
    ] = default_of(_C, "refused_retry_seconds"),
    registry: RegistryOpt = None,
    store: StoreOpt = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Local model cache. Default: $BIDSCORE_HOME/serve-cache.", show_default=False
        ),
    ] = None,
    max_concurrent_rpcs: Annotated[
        int | None,
        typer.Option(
            help="Calls in flight per worker before RESOURCE_EXHAUSTED (default: no limit)."
        ),
    ] = default_of(_C, "max_concurrent_rpcs"),
    metrics_port: Annotated[
        int, typer.Option(help="Prometheus port: one endpoint for all workers; 0 = off.")
    ] = default_of(_C, "metrics_port"),
    score_sample_rate: Annotated[
        float, typer.Option(help="Share of calls whose scores feed the bidscore_score histogram.")
    ] = default_of(_C, "score_sample_rate"),
    max_request_bytes: Annotated[
        int, typer.Option(help="Larger requests get INVALID_ARGUMENT.")
    ] = default_of(_C, "max_request_bytes"),
    max_candidates: Annotated[
        int, typer.Option(help="More candidates in one request get INVALID_ARGUMENT.")
    ] = default_of(_C, "max_candidates"),
    max_models: Annotated[
        int,
        typer.Option(help="More entries in a request's models list get INVALID_ARGUMENT."),
    ] = default_of(_C, "max_models"),
    offload_candidates: Annotated[
        int,
        typer.Option(
            help="Requests with more work (candidates x requested models, counted as if every "
            "served model were asked for) are scored on a thread, not the event loop "
            "(0 = always inline)."
        ),
    ] = default_of(_C, "offload_candidates"),
    strict_features: Annotated[
        bool,
        typer.Option(
            help="Refuse requests with feature keys the schema does not define "
            "(INVALID_ARGUMENT); off, they are only counted."
        ),
    ] = default_of(_C, "strict_features"),
    context_keys: Annotated[
        str,
        typer.Option(
            help="Comma-separated context keys that are not features but expected (experiment "
            "keys): not counted as unknown, not refused by --strict-features. A running "
            "experiment's key always is."
        ),
    ] = ",".join(default_of(_C, "context_keys")),
    stream_max_in_flight: Annotated[
        int,
        typer.Option(
            help="ScoreStream: messages read but not yet answered per stream; beyond it the "
            "server stops reading that stream (flow control)."
        ),
    ] = default_of(_C, "stream_max_in_flight"),
    grace: Annotated[
        float, typer.Option(help="Seconds in-flight calls get to finish after SIGTERM.")
    ] = default_of(_C, "grace_seconds"),
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = default_of(
        _C, "log_level"
    ),
    log_format: Annotated[
        str, typer.Option(help="text, or json (one object per line, for log pipelines).")
    ] = "text",
    predlog: Annotated[
        str | None,
        typer.Option(help="Prediction log: a directory or s3://bucket/prefix (default: off)."),
    ] = default_of(_C, "predlog"),
    predlog_sample_rate: Annotated[
        float, typer.Option(help="Share of answered requests the prediction log keeps.")
    ] = default_of(_C, "predlog_sample_rate"),
    predlog_features: Annotated[
        bool, typer.Option(help="Also log the raw features (for serving drift).")
    ] = default_of(_C, "predlog_features"),
    predlog_experiment_sample_rate: Annotated[
        float | None,
        typer.Option(
            help="Share of requests under a running experiment the prediction log keeps "
            "(shadow scores are logged for these only). Default: --predlog-sample-rate.",
            show_default=False,
        ),
    ] = default_of(_C, "predlog_experiment_sample_rate"),
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="PEM certificate chain: serve TLS (re-read when the file changes)."),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(help="PEM CA bundle: require client certificates signed by it (mTLS)."),
    ] = None,
) -> None:
    """Serve the models over gRPC (bidscore.v1.Scorer), following their registry alias."""
    # Imported here so `control --help` does not pay for grpc and rust_core, and works
    # without the [serve] extra.
    with needs_extra("serve", "control serve"):
        from pyserver.workers import run_server  # noqa: PLC0415

    if log_format not in LOG_FORMATS:
        typer.echo(f"error: --log-format must be one of {', '.join(LOG_FORMATS)}", err=True)
        raise typer.Exit(1)
    configure_logs(log_level, log_format)
    try:
        config = ServerConfig(
            host=host,
            port=port,
            workers=workers,
            models=parse_models(models),
            specs=specs or ServerConfig().specs,
            alias=alias,
            poll_interval=poll_interval,
            refused_retry_seconds=refused_retry,
            registry_url=registry_url(registry),
            store_url=store_url(store),
            cache_dir=cache_dir or settings.bidscore_home() / "serve-cache",
            max_concurrent_rpcs=max_concurrent_rpcs,
            metrics_port=metrics_port,
            score_sample_rate=score_sample_rate,
            max_request_bytes=max_request_bytes,
            max_candidates=max_candidates,
            max_models=max_models,
            offload_candidates=offload_candidates,
            stream_max_in_flight=stream_max_in_flight,
            grace_seconds=grace,
            strict_features=strict_features,
            context_keys=parse_models(context_keys),
            log_level=log_level.upper(),
            predlog=predlog,
            predlog_sample_rate=predlog_sample_rate,
            predlog_features=predlog_features,
            predlog_experiment_sample_rate=predlog_experiment_sample_rate,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_client_ca=tls_client_ca,
        )
        code = run_server(config, before_start=report_missing_aliases)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)
