"""`control serve`: build a `pyserver.config.ServerConfig` from the options and hand it to the
server's plain entry point (`pyserver.workers.run_server`). The server knows nothing of this CLI.

Every default is the `ServerConfig` field's own (`default_of`), so the two cannot disagree.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from bidscore import settings
from control.cli.defaults import default_of
from control.cli.options import RegistryOpt, SpecsOpt, StoreOpt, registry_url, store_url
from pyserver.config import ServerConfig, parse_models
from pyserver.errors import ConfigError

_C = ServerConfig


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
    alias: Annotated[str, typer.Option(help="Registry alias each model follows.")] = default_of(
        _C, "alias"
    ),
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between polls of the alias pointers.")
    ] = default_of(_C, "poll_interval"),
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
        int, typer.Option(help="Prometheus port of worker 0 (worker i: +i); 0 = off.")
    ] = default_of(_C, "metrics_port"),
    max_request_bytes: Annotated[
        int, typer.Option(help="Larger requests get INVALID_ARGUMENT.")
    ] = default_of(_C, "max_request_bytes"),
    max_candidates: Annotated[
        int, typer.Option(help="More candidates in one request get INVALID_ARGUMENT.")
    ] = default_of(_C, "max_candidates"),
    offload_candidates: Annotated[
        int,
        typer.Option(
            help="Requests with more candidates are scored on a thread, not the event loop "
            "(0 = always inline)."
        ),
    ] = default_of(_C, "offload_candidates"),
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
) -> None:
    """Serve the models over gRPC (bidscore.v1.Scorer), following their registry alias."""
    # Imported here so `control --help` does not pay for grpc and rust_core.
    from pyserver.workers import run_server  # noqa: PLC0415

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s [pid %(process)d] %(name)s: %(message)s",
    )
    try:
        config = ServerConfig(
            host=host,
            port=port,
            workers=workers,
            models=parse_models(models),
            specs=specs or ServerConfig().specs,
            alias=alias,
            poll_interval=poll_interval,
            registry_url=registry_url(registry),
            store_url=store_url(store),
            cache_dir=cache_dir or settings.bidscore_home() / "serve-cache",
            max_concurrent_rpcs=max_concurrent_rpcs,
            metrics_port=metrics_port,
            max_request_bytes=max_request_bytes,
            max_candidates=max_candidates,
            offload_candidates=offload_candidates,
            stream_max_in_flight=stream_max_in_flight,
            grace_seconds=grace,
            log_level=log_level.upper(),
            predlog=predlog,
            predlog_sample_rate=predlog_sample_rate,
            predlog_features=predlog_features,
        )
        code = run_server(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)
