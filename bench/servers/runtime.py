"""The grpc.aio-on-uvloop runtime shared by the reference servers.

Like pyserver, N worker processes share one port through SO_REUSEPORT, and they are forked
before any gRPC object exists (gRPC's core does not survive a fork). The Score method is
registered with raw-bytes (de)serializers, so each server does exactly the protobuf work its
handler chooses to do and nothing more.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import uvloop
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

SERVICE = "bidscore.v1.Scorer"
Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]
HandlerFactory = Callable[[], Handler]
# ScoreStream, when a server has one: (request iterator, context) -> None, writing with
# context.write.
StreamHandler = Callable[[AsyncIterator[bytes], grpc.aio.ServicerContext], Awaitable[None]]
StreamHandlerFactory = Callable[[], StreamHandler]


def common_args(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    return parser


def serve(
    make_handler: HandlerFactory,
    host: str,
    port: int,
    workers: int,
    make_stream_handler: StreamHandlerFactory | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT with `workers` processes; `make_handler` runs in each."""
    if workers < 1:
        raise SystemExit(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        _run_worker(make_handler, host, port, make_stream_handler)
        return
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(
            target=_run_worker,
            args=(make_handler, host, port, make_stream_handler),
            daemon=True,
        )
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.join()


def _run_worker(
    make_handler: HandlerFactory,
    host: str,
    port: int,
    make_stream_handler: StreamHandlerFactory | None = None,
) -> None:
    uvloop.install()
    stream = make_stream_handler() if make_stream_handler is not None else None
    asyncio.run(_serve(make_handler(), host, port, stream))


async def _serve(
    handler: Handler, host: str, port: int, stream: StreamHandler | None = None
) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    # No (de)serializers: bytes in, bytes out.
    methods = {"Score": grpc.unary_unary_rpc_method_handler(handler)}
    if stream is not None:
        methods["ScoreStream"] = grpc.stream_stream_rpc_method_handler(stream)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, methods),))
    health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise SystemExit(f"cannot bind {host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop(1.0)
