"""The /metrics endpoint, served from the worker's event loop.

prometheus_client's `start_http_server` runs a ThreadingHTTPServer: one thread per connection,
kept while the client is slow, so 300 idle connections made 314 threads in the worker. Here a
small `asyncio.start_server` reads one request per connection with an idle timeout, answers it
with `generate_latest` and closes; at most `max_connections` are open at once (more are closed
at once, unanswered). No thread at all; a scrape costs the loop well under a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

MAX_CONNECTIONS = 32
IDLE_TIMEOUT_SECONDS = 5.0
MAX_HEAD_BYTES = 8192  # request line and headers; a scrape sends a few hundred bytes


class MetricsServer:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        details: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._registry = registry
        # `GET /health`: a JSON summary (served versions, refused artifacts) for operators.
        self._details = details
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._open = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._handle, host, port, limit=MAX_HEAD_BYTES, reuse_address=True
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= self._max_connections:
            writer.close()  # over the limit: refuse rather than queue
            return
        self._open += 1
        try:
            await asyncio.wait_for(self._answer(reader, writer), self._idle_timeout)
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ):
            pass  # a slow, vanished or garbled client: just close
        finally:
            self._open -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, _, rest = head.partition(b" ")
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            status, body, kind = b"405 Method Not Allowed", b"", b"text/plain"
        elif path in (b"/", b"/metrics"):
            status, body, kind = b"200 OK", generate_latest(self._registry), None
        elif path == b"/health" and self._details is not None:
            body = json.dumps(self._details(), sort_keys=True).encode()
            status, kind = b"200 OK", b"application/json"
        else:
            status, body, kind = b"404 Not Found", b"", b"text/plain"
        content_type = kind or CONTENT_TYPE_LATEST.encode()
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
            + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + (body if method == b"GET" else b"")
        )  # fmt: skip
        await writer.drain()
