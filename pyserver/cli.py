"""`control serve` and `python -m pyserver`: one Typer command, two front doors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from control import settings
from control.cli.options import RegistryOpt, StoreOpt, registry_url, store_url
from pyserver.config import (
    DEFAULT_MAX_CANDIDATES,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_SPECS,
    ConfigError,
    ServerConfig,
    parse_models,
)


def serve(  # noqa: PLR0917 -- one parameter per CLI option; Typer passes them by name
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="gRPC port (shared by every worker).")] = 50051,
    workers: Annotated[
        int, typer.Option(help="Worker processes sharing the port with SO_REUSEPORT.")
    ] = 1,
    models: Annotated[
        str, typer.Option(help="Comma-separated models to serve (names in --specs).")
    ] = "ctr,cvr",
    specs: Annotated[
        str, typer.Option(help="module:attribute of the dict of ModelSpec this server trusts.")
    ] = DEFAULT_SPECS,
    alias: Annotated[str, typer.Option(help="Registry alias each model follows.")] = "production",
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between polls of the alias pointers.")
    ] = 2.0,
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
    ] = None,
    metrics_port: Annotated[
        int, typer.Option(help="Prometheus port of worker 0 (worker i: +i); 0 = off.")
    ] = 0,
    max_request_bytes: Annotated[
        int, typer.Option(help="Larger requests get INVALID_ARGUMENT.")
    ] = DEFAULT_MAX_REQUEST_BYTES,
    max_candidates: Annotated[
        int, typer.Option(help="More candidates in one request get INVALID_ARGUMENT.")
    ] = DEFAULT_MAX_CANDIDATES,
    offload_candidates: Annotated[
        int,
        typer.Option(
            help="Requests with more candidates are scored on a thread, not the event loop "
            "(0 = always inline)."
        ),
    ] = 64,
    grace: Annotated[
        float, typer.Option(help="Seconds in-flight calls get to finish after SIGTERM.")
    ] = 10.0,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    predlog: Annotated[
        str | None,
        typer.Option(help="Prediction log: a directory or s3://bucket/prefix (default: off)."),
    ] = None,
    predlog_sample_rate: Annotated[
        float, typer.Option(help="Share of answered requests the prediction log keeps.")
    ] = 0.01,
    predlog_features: Annotated[
        bool, typer.Option(help="Also log the raw features (for serving drift).")
    ] = False,
) -> None:
    """Serve the models over gRPC (bidscore.v1.Scorer), following their registry alias."""
    # Imported here so `control --help` does not pay for grpc and rust_core.
    from pyserver.serving_features import ServingFeatures  # noqa: PLC0415
    from pyserver.workers import run  # noqa: PLC0415

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
            specs=specs,
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
            grace_seconds=grace,
            log_level=log_level.upper(),
            predlog=predlog,
            predlog_sample_rate=predlog_sample_rate,
            predlog_features=predlog_features,
        )
        features = ServingFeatures.for_models(config.models, config.specs, config.max_candidates)
        code = run(config, features)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def main() -> None:
    """`python -m pyserver`."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(serve)
    app()
