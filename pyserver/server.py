"""One worker's lifecycle: build the grpc.aio server, serve until SIGTERM/SIGINT, drain.

Start-up order: bind and start serving at once with health NOT_SERVING (Score answers
UNAVAILABLE) while the reloader loads the models off the event loop; the first complete,
warmed-up model set flips health to SERVING. Shutdown: health NOT_SERVING, stop the reloader,
`server.stop(grace)` refuses new calls and lets in-flight ones finish, in a `finally`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_reflection.v1alpha import reflection

from pyserver.config import ServerConfig
from pyserver.errors import ConfigError
from pyserver.experiments import ExperimentTraffic, ShadowScorer
from pyserver.feature_keys import UnknownFeatures
from pyserver.feature_ranges import RangeChecks
from pyserver.health import HEALTH_SERVICE_NAME, Health
from pyserver.metrics import Metrics
from pyserver.metrics_endpoint import in_multiprocess_mode
from pyserver.metrics_http import MetricsServer
from pyserver.modelset import ModelSet, ModelSlot
from pyserver.predlog import PredictionLog
from pyserver.reloader import Reloader
from pyserver.service import SERVICE_NAME, ScoreService
from pyserver.serving_features import ServingFeatures
from pyserver.stream import StreamService
from pyserver.tls import ReloadingCredentials

log = logging.getLogger(__name__)


def grpc_options(config: ServerConfig) -> list[tuple[str, int]]:
    return [
        # Several workers share the port only when asked to: with one worker a port conflict
        # must fail loudly rather than silently split traffic with a stale process.
        ("grpc.so_reuseport", 1 if config.workers > 1 else 0),
        ("grpc.max_receive_message_length", config.transport_max_bytes),
        ("grpc.max_send_message_length", config.transport_max_bytes),
    ]


def open_port(server: grpc.aio.Server, config: ServerConfig) -> None:
    """Bind the scoring port, with TLS when configured; plaintext off loopback is warned of."""
    tls = config.tls
    try:
        if tls is not None:
            server.add_secure_port(config.address, ReloadingCredentials(tls).credentials())
        else:
            server.add_insecure_port(config.address)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen on {config.address}: {exc}") from exc
    if tls is None and not config.loopback:
        log.warning(
            "listening on %s in plaintext: anyone who can reach it can score and read scores;"
            " pass --tls-cert and --tls-key (and --tls-client-ca for mTLS)",
            config.address,
        )


async def serve(config: ServerConfig, features: ServingFeatures, worker: int = 0) -> None:
    """Run one worker until SIGTERM or SIGINT, then drain and return."""
    loop = asyncio.get_running_loop()
    shared = in_multiprocess_mode()  # several workers: the supervisor serves the aggregate
    metrics = Metrics(process_collectors=not shared, score_sample_rate=config.score_sample_rate)
    metrics.declare_models(config.models)
    metrics_server = (
        MetricsServer(metrics.registry, details=metrics.health_details)
        if config.metrics_port and not shared
        else None
    )
    if metrics_server is not None:
        try:
            await metrics_server.start(config.host, config.metrics_port)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {config.host}:{config.metrics_port}: {exc.strerror}"
            ) from exc

    predlog, shadow, experiments = _after_response(config, features, metrics)
    slot = ModelSlot()
    health = Health()
    offload = (
        ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="bidscore-score")
        if config.offload_candidates
        else None
    )
    service = ScoreService(
        slot,
        metrics,
        max_request_bytes=config.max_request_bytes,
        max_candidates=config.max_candidates,
        max_response_bytes=config.transport_max_bytes,
        python_values=features.python_values,
        on_response=predlog.log_response if predlog is not None else None,
        offload=offload,
        offload_candidates=config.offload_candidates,
        unknown_features=UnknownFeatures(
            features.raw_names,
            strict=config.strict_features,
            registry=metrics.registry,
            ranges=RangeChecks(
                features.numeric_raw, strict=config.strict_features, registry=metrics.registry
            ),
            context_keys=config.context_keys,
        ),
        max_concurrent=config.max_concurrent_rpcs,
        experiments=experiments,
    )
    streams = StreamService(
        slot,
        metrics,
        max_request_bytes=config.max_request_bytes,
        max_candidates=config.max_candidates,
        max_in_flight=config.stream_max_in_flight,
        python_values=features.python_values,
        on_response=predlog.log_response if predlog is not None else None,
        offload=offload,
        offload_candidates=config.offload_candidates,
        experiments=experiments,
    )
    server = _grpc_server(config, service, streams, health)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def on_swap(_: ModelSet) -> None:
        # Called on the reloader thread; health lives on the event loop.
        asyncio.run_coroutine_threadsafe(_mark_ready(health, metrics), loop)

    reloader = Reloader(config, features, slot, metrics, on_swap)
    await health.start()  # before the port opens: nothing may see SERVING too early
    await server.start()
    try:
        reloader.start()
        log.info(
            "worker %d (pid %d) listening on %s, models %s at alias %r",
            worker,
            os.getpid(),
            config.address,
            ",".join(config.models),
            config.alias,
        )
        await stop.wait()
        log.info("worker %d draining (grace %.1fs)", worker, config.grace_seconds)
    finally:
        await health.drain()
        metrics.ready.set(0)
        reloader.stop()
        deadline = loop.time() + config.grace_seconds
        # Streams stop reading, answer what they read and end with UNAVAILABLE, alongside
        # the unary calls finishing.
        finished, streams_ended = await asyncio.gather(
            service.drain(config.grace_seconds), streams.drain(config.grace_seconds)
        )
        log.info(
            "worker %d: in-flight calls %s, streams %s",
            worker,
            "finished" if finished else "timed out",
            "ended" if streams_ended else "timed out",
        )
        # Calls already queued inside grpc get a moment to reach the handler and be refused
        # with UNAVAILABLE; whatever is still queued at stop() is cancelled by grpc.
        await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))
        await server.stop(max(0.0, deadline - loop.time()))
        if offload is not None:
            offload.shutdown(wait=True)
        if shadow is not None:
            shadow.close()
        if predlog is not None:
            predlog.close(timeout=config.grace_seconds)
        if metrics_server is not None:
            await metrics_server.close()
        log.info("worker %d stopped", worker)


def _after_response(
    config: ServerConfig, features: ServingFeatures, metrics: Metrics
) -> tuple[PredictionLog | None, ShadowScorer | None, ExperimentTraffic]:
    """What happens after a response: the prediction log, shadow scoring, experiment counts.
    Per worker, after the fork: the log and the shadow scorer own a thread each."""
    predlog = (
        PredictionLog(
            config.predlog,
            sample_rate=config.predlog_sample_rate,
            include_features=config.predlog_features,
            feature_names=features.raw_names,
            registry=metrics.registry,
            experiment_sample_rate=config.predlog_experiment_sample_rate,
        )
        if config.predlog
        else None
    )
    # Shadow scores go only to the prediction log: without one there is nothing to shadow.
    shadow = (
        ShadowScorer(
            metrics,
            predlog,
            python_values=features.python_request_values,
            queue_size=config.shadow_queue,
        )
        if predlog is not None
        else None
    )
    experiments = ExperimentTraffic(metrics, predlog, shadow)
    return predlog, shadow, experiments


async def _mark_ready(health: Health, metrics: Metrics) -> None:
    if not health.serving:
        await health.set_serving(True)
        metrics.ready.set(1)


def _grpc_server(
    config: ServerConfig, service: ScoreService, streams: StreamService, health: Health
) -> grpc.aio.Server:
    """The grpc.aio server with Score, ScoreStream, health and reflection, bound but not
    started."""
    # No maximum_concurrent_rpcs here: the service enforces the limit, so refusals are counted.
    server = grpc.aio.server(options=grpc_options(config))
    handlers = {**service.handlers(), "ScoreStream": streams.handler()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
    health.add_to(server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    open_port(server, config)
    return server
