"""The `bidscore.v1.Scorer/ScoreStream` handler: auctions multiplexed on one long-lived stream.

Per unary call, grpc.aio costs far more server CPU than bidscore's own work; on a stream a
message costs a read and a write. Each stream runs two coroutines:

- the reader takes messages off the stream (`context.read()`), notes the model set current at
  that moment, and queues them; it stops reading while `max_in_flight` messages are read but
  not yet answered, so a client that stops reading its responses is held back by HTTP/2 flow
  control and the server's memory stays bounded;
- the writer takes every message waiting, hands them to Rust in one call
  (`Scorer.score_many`, GIL released) and writes the responses. A lone message is scored at
  once; messages that arrived while the previous batch was being written go together.

A bad message gets a response with its `request_id` and `error` (the status the unary call
would answer) and the stream goes on. On drain (SIGTERM) the readers stop, every message
already read is answered, and the stream ends with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor

import grpc
from prometheus_client import Gauge

import rust_core
from bidscore.v1 import scorer_pb2
from pyserver.experiments import ExperimentTraffic
from pyserver.metrics import Metrics
from pyserver.modelset import ModelSet, ModelSlot
from pyserver.python_features import PythonValues
from pyserver.service import ResponseHook

log = logging.getLogger(__name__)

# One queued message: its bytes, the model set current when it was read, when it was read.
_Queued = tuple[bytes, ModelSet | None, float]
# (response, candidate count, status name, experiment routing word)
_Answer = tuple[bytes | None, int, str, int]


class StreamService:
    """ScoreStream for one worker: the same slot, limits, metrics and log as `ScoreService`."""

    def __init__(
        self,
        slot: ModelSlot,
        metrics: Metrics,
        *,
        max_request_bytes: int,
        max_candidates: int,
        max_in_flight: int,
        python_values: PythonValues | None = None,
        on_response: ResponseHook | None = None,
        offload: Executor | None = None,
        offload_candidates: int = 64,
        experiments: ExperimentTraffic | None = None,
    ) -> None:
        self._slot = slot
        self._metrics = metrics
        self._max_request_bytes = max_request_bytes
        self._max_candidates = max_candidates
        self._max_in_flight = max_in_flight
        self._python_values = python_values
        self.on_response = on_response
        self.experiments = experiments
        self._offload = offload
        self._defer_over = offload_candidates if offload is not None else None
        self.draining = False
        self._streams: set[_Stream] = set()
        self._idle: asyncio.Event | None = None
        self._open = Gauge(
            "bidscore_streams_open",
            "ScoreStream calls open.",
            registry=metrics.registry,
            multiprocess_mode="livesum",
        )

    def handler(self) -> grpc.RpcMethodHandler:
        # None (de)serializers: the handler reads and writes bytes.
        return grpc.stream_stream_rpc_method_handler(self.score_stream)

    async def score_stream(
        self, _requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> None:
        self._metrics.streams_started.inc()
        if self.draining:
            self._metrics.streams_by_code[grpc.StatusCode.UNAVAILABLE].inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
        stream = _Stream(self, context)
        self._streams.add(stream)
        self._open.inc()
        try:
            await stream.run()
        except asyncio.CancelledError:
            self._metrics.streams_by_code[grpc.StatusCode.CANCELLED].inc()
            raise
        finally:
            self._open.dec()
            self._streams.discard(stream)
            if not self._streams and self._idle is not None:
                self._idle.set()
        if stream.drained:
            # Every message read has its response; the client resends the rest elsewhere.
            log.info("stream drained: %d read, %d answered", stream.read, stream.answered)
            self._metrics.streams_by_code[grpc.StatusCode.UNAVAILABLE].inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
        self._metrics.streams_by_code[grpc.StatusCode.OK].inc()

    async def drain(self, timeout: float) -> bool:
        """Stop reading on every stream, answer what was read, end the streams with
        UNAVAILABLE; wait up to `timeout` for that. True if every stream ended."""
        self.draining = True
        for stream in list(self._streams):
            stream.stop_reading()
        if not self._streams:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # --- scoring ------------------------------------------------------------------------------

    async def answer(self, batch: list[_Queued]) -> list[bytes]:
        """Responses to `batch`, in its order; metrics and the prediction log updated."""
        answers: list[_Answer] = []
        start = 0
        # Consecutive messages read under the same model set go to Rust together (a reload
        # between two reads splits the batch: each message is scored by the models current
        # when it was read).
        while start < len(batch):
            models = batch[start][1]
            end = start + 1
            while end < len(batch) and batch[end][1] is models:
                end += 1
            requests = [item[0] for item in batch[start:end]]
            answers.extend(await self._answer_group(models, requests))
            start = end
        now = time.perf_counter()
        metrics = self._metrics
        observe_latency = metrics.stream_latency.observe
        observe_candidates = metrics.candidates.observe
        hook = self.on_response
        experiments = self.experiments
        out: list[bytes] = []
        ok = 0
        for (request, models, read_at), (response, candidates, code, routing) in zip(
            batch, answers, strict=True
        ):
            assert response is not None
            observe_latency(now - read_at)
            if code == "OK":
                ok += 1
                observe_candidates(candidates)
                if routing and experiments is not None and models is not None:
                    experiments.answered(models, request, response, routing)
                elif hook is not None:
                    hook(request, response)
            else:
                metrics.stream_messages_by_code[grpc.StatusCode[code]].inc()
            out.append(response)
        if ok:
            metrics.stream_messages_by_code[grpc.StatusCode.OK].inc(ok)
        return out

    async def _answer_group(self, models: ModelSet | None, requests: list[bytes]) -> list[_Answer]:
        if models is None:
            return [_refusal(r, "UNAVAILABLE", "models are not loaded yet") for r in requests]
        try:
            values = self._python(requests) if self._python_values is not None else None
            answers: list[_Answer] = models.scorer.score_many(
                requests, self._max_request_bytes, self._defer_over, values
            )
            deferred = [i for i, (response, _, _, _) in enumerate(answers) if response is None]
            if deferred:
                # Big requests: scored on a thread so they do not stall this event loop.
                scored = await asyncio.get_running_loop().run_in_executor(
                    self._offload,
                    _score_many,
                    models.scorer,
                    [requests[i] for i in deferred],
                    self._max_request_bytes,
                    [values[i] for i in deferred] if values is not None else None,
                )
                for i, answer in zip(deferred, scored, strict=True):
                    answers[i] = answer
        except Exception as exc:
            # No message may take a stream down: anything unexpected becomes INTERNAL.
            log.exception("unexpected error while scoring a stream batch")
            text = f"internal error: {type(exc).__name__}: {exc}"
            return [_refusal(r, "INTERNAL", text) for r in requests]
        return answers

    def _python(self, requests: list[bytes]) -> list[dict[str, list[str | None]] | None]:
        """`@property` feature values per request; None where Rust will refuse the request
        anyway (unparsable, too big, too many candidates), so no Python runs for it."""
        python = self._python_values
        assert python is not None
        out: list[dict[str, list[str | None]] | None] = []
        for request in requests:
            values = None
            if len(request) <= self._max_request_bytes:
                with contextlib.suppress(Exception):
                    values = python.for_request(request, self._max_candidates)
            out.append(values)
        return out


class _Stream:
    """One ScoreStream call: a reader task and the writer (the handler's own coroutine)."""

    def __init__(self, service: StreamService, context: grpc.aio.ServicerContext) -> None:
        self._service = service
        self._context = context
        self._queue: list[_Queued] = []
        self._in_flight = 0  # read, not yet written
        self._wake = asyncio.Event()  # the writer has work (or the reader ended)
        self._space = asyncio.Event()  # the reader may read again
        self._stop = False  # drain: no more reads
        self._reader: asyncio.Task[None] | None = None
        self._reading = True
        self.drained = False
        self.read = 0
        self.answered = 0

    def stop_reading(self) -> None:
        self._stop = True
        if self._reader is not None:
            self._reader.cancel()

    async def run(self) -> None:
        reader = self._reader = asyncio.create_task(self._read())
        if self._service.draining:  # drain began between the handler's check and here
            self.stop_reading()
        try:
            await self._write()
        finally:
            if not reader.done():
                reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        # An exception in the reader (other than the stream's own end) surfaces here.
        error = None if reader.cancelled() else reader.exception()
        if isinstance(error, asyncio.CancelledError):  # pragma: no cover - defensive
            error = None
        if error is not None:
            raise error

    async def _read(self) -> None:
        # A plain `await context.read()` per message: this loop is the hot path. Drain
        # cancels this task; a message whose read completes in that instant is one the
        # handler never got, and the client resends it after UNAVAILABLE.
        context, slot, limit = self._context, self._service._slot, self._service._max_in_flight
        queue, wake, space = self._queue, self._wake, self._space
        try:
            while True:
                if self._in_flight >= limit:
                    # Backpressure: unread messages stay in grpc's flow-control window.
                    space.clear()
                    await space.wait()
                    continue
                message = await context.read()
                if message is grpc.aio.EOF:
                    break
                self._in_flight += 1
                self.read += 1
                queue.append((message, slot.current, time.perf_counter()))
                wake.set()
        except asyncio.CancelledError:
            if not self._stop:
                raise
            self.drained = True
        finally:
            self._reading = False
            wake.set()

    async def _write(self) -> None:
        context = self._context
        wake = self._wake
        while True:
            if not self._queue:
                if not self._reading:
                    return
                # Checked and cleared with no await in between: no wake-up is lost.
                wake.clear()
                await wake.wait()
                continue
            # In place: the reader appends to this same list.
            batch = self._queue.copy()
            self._queue.clear()
            for response in await self._service.answer(batch):
                await context.write(response)
                self._in_flight -= 1
                self.answered += 1
                if not self._space.is_set():
                    self._space.set()


def _score_many(
    scorer: rust_core.Scorer,
    requests: list[bytes],
    max_request_bytes: int,
    values: list[dict[str, list[str | None]] | None] | None,
) -> list[_Answer]:
    return scorer.score_many(requests, max_request_bytes, None, values)


def _refusal(request: bytes, code: str, message: str) -> _Answer:
    """An error response built in Python (the rare paths where Rust is not called)."""
    try:
        request_id = scorer_pb2.ScoreRequest.FromString(request).request_id
    except Exception:
        request_id = ""
    response = scorer_pb2.ScoreResponse(
        request_id=request_id, error=scorer_pb2.Error(code=code, message=message)
    )
    return response.SerializeToString(), 0, code, 0
