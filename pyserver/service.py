"""The `bidscore.v1.Scorer/Score` handler: raw bytes in, raw bytes out.

The method is registered with no request deserializer and no response serializer, so grpc
hands over the serialized ScoreRequest and sends back what rust_core returns. Parsing, the
candidate and model-list limits, tokenising, scoring and serializing all happen inside one
`Scorer.score_request_routed` call with the GIL released, which also returns the candidate
count for the metrics and the experiment arms; the Python work per request is a handful of
attribute reads and metric updates. Only when the served specs use `@property` features is
the request also parsed in Python (with upb), to compute them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

import grpc

import rust_core
from bidscore.v1 import scorer_pb2
from pyserver.errors import RequestError
from pyserver.experiments import ExperimentTraffic
from pyserver.feature_keys import UnknownFeatures
from pyserver.metrics import Metrics
from pyserver.modelset import ModelSet, ModelSlot
from pyserver.python_features import PythonValues

SERVICE_NAME = "bidscore.v1.Scorer"
log = logging.getLogger(__name__)

# Called with (request bytes, response bytes) after every successful call: the sampled
# prediction log (`PredictionLog.log_response`) plugs in here. It runs on the event loop, so
# it must not block.
ResponseHook = Callable[[bytes, bytes], object]  # the return value is ignored


class ScoreService:
    def __init__(
        self,
        slot: ModelSlot,
        metrics: Metrics,
        *,
        max_request_bytes: int,
        max_candidates: int,
        max_response_bytes: int | None = None,
        python_values: PythonValues | None = None,
        on_response: ResponseHook | None = None,
        offload: Executor | None = None,
        offload_candidates: int = 64,
        unknown_features: UnknownFeatures | None = None,
        max_concurrent: int | None = None,
        experiments: ExperimentTraffic | None = None,
    ) -> None:
        self._slot = slot
        self._metrics = metrics
        self._max_request_bytes = max_request_bytes
        self._max_candidates = max_candidates
        self._max_response_bytes = max_response_bytes
        self._python_values = python_values
        self.on_response = on_response
        # Requests routed by a running experiment go here instead (it logs them itself).
        self.experiments = experiments
        self._offload = offload
        self._offload_candidates = offload_candidates
        self._unknown_features = unknown_features
        # Enforced here rather than by grpc's maximum_concurrent_rpcs, whose refusals never
        # reach a handler and so could not be counted.
        self._max_concurrent = max_concurrent
        self.draining = False
        self._in_flight = 0
        self._idle: asyncio.Event | None = None

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        # None (de)serializers: the handler sees and returns bytes.
        return {"Score": grpc.unary_unary_rpc_method_handler(self.score)}

    async def score(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        # Unless the served specs have Python features, the request meets one call into
        # rust_core, which parses, checks the candidate count, scores and serializes.
        start = time.perf_counter()
        await self._admit(context, start)
        self._in_flight += 1
        self._metrics.inflight.inc()
        try:
            if _expired(context):
                raise RequestError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline already expired")
            models = self._slot.current
            if models is None:
                raise RequestError(grpc.StatusCode.UNAVAILABLE, "models are not loaded yet")
            response, candidates, routing = await self._score_checked(models, request, context)
        except RequestError as exc:
            # Metrics first: the client may see the status before abort() returns.
            self._record(exc.code, start)
            await context.abort(exc.code, exc.message)
        except asyncio.CancelledError:
            # grpc cancels a handler that is awaiting (an offloaded request) when the deadline
            # passes or the client goes away; the call still ended, under that status.
            expired = _expired(context)
            self._record(
                grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED, start
            )
            raise
        except Exception as exc:
            # No request may take a worker down: anything unexpected becomes INTERNAL.
            log.exception("unexpected error while scoring")
            self._record(grpc.StatusCode.INTERNAL, start)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
            )
        finally:
            self._in_flight -= 1
            self._metrics.inflight.dec()
            if self._in_flight == 0 and self._idle is not None:
                self._idle.set()
        self._record(grpc.StatusCode.OK, start)
        self._metrics.candidates.observe(candidates)
        if self._metrics.sample_scores():
            self._observe_scores(response)
        if routing and self.experiments is not None and models is not None:
            self.experiments.answered(models, request, response, routing)
        elif self.on_response is not None:
            self.on_response(request, response)
        return response

    async def _score_checked(
        self, models: ModelSet, request: bytes, context: grpc.aio.ServicerContext
    ) -> tuple[bytes, int, int]:
        """The request's own limits, then the scoring; RequestError for a refused one.
        Returns the response, the candidate count and the experiment routing word."""
        if len(request) > self._max_request_bytes:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request is {len(request)} bytes, over the limit of {self._max_request_bytes}",
            )
        if self._unknown_features is not None:
            self._unknown_features.check(
                request, ranges=models.ranges, context_keys=models.experiment_keys
            )
        python = self._python_values
        values = python.for_request(request, self._max_candidates) if python is not None else None
        response, candidates, routing = await self._score(models.scorer, request, values)
        if _expired(context):
            # Scored inline past the deadline: grpc will not deliver the response, the client
            # sees DEADLINE_EXCEEDED, and so must the metrics (not OK).
            raise RequestError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded while scoring")
        if self._max_response_bytes is not None and len(response) > self._max_response_bytes:
            # Unreachable with a valid ServerConfig (it bounds the response); if it ever
            # happens the client gets a status, not a failed send counted as OK.
            raise RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"response of {len(response)} bytes is over the limit of "
                f"{self._max_response_bytes}",
            )
        return response, candidates, routing

    async def _score(
        self,
        scorer: rust_core.Scorer,
        request: bytes,
        values: dict[str, list[str | None]] | None,
    ) -> tuple[bytes, int, int]:
        """One Rust call parses, routes and scores the request, unless it reports more work than
        --offload-candidates (counted for every served model: a request for half of them, at
        twice the candidates); that one is scored on a thread."""
        defer_over = self._offload_candidates if self._offload is not None else None
        response, candidates, routing = _run(
            scorer.score_request_routed, request, values, defer_over
        )
        if response is None:
            # Scored inline it would stall every other call on this loop for milliseconds;
            # Rust releases the GIL, so a thread scores it in parallel. (It is parsed again
            # there: cheap next to the scoring.)
            response, candidates, routing = await asyncio.get_running_loop().run_in_executor(
                self._offload, _run, scorer.score_request_routed, request, values, None
            )
        if response is None:  # pragma: no cover - Rust scores whenever defer_over is None
            raise RuntimeError("the scorer returned no response")
        return response, candidates, routing

    async def _admit(self, context: grpc.aio.ServicerContext, start: float) -> None:
        """Refuse, before any work, a call the server cannot take now (counted like any)."""
        self._metrics.started.inc()
        if self.draining:
            # Shutting down: UNAVAILABLE tells clients to retry on another replica.
            self._record(grpc.StatusCode.UNAVAILABLE, start)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
        if self._max_concurrent is not None and self._in_flight >= self._max_concurrent:
            self._record(grpc.StatusCode.RESOURCE_EXHAUSTED, start)
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"over the limit of {self._max_concurrent} concurrent calls",
            )

    def _observe_scores(self, response: bytes) -> None:
        """The online score distribution, from a sample of the calls (parsing costs ~µs)."""
        reply = scorer_pb2.ScoreResponse.FromString(response)
        names = [(m.name, m.version) for m in reply.models]
        self._metrics.observe_scores(names, (c.scores for c in reply.candidates))

    def _record(self, code: grpc.StatusCode, start: float) -> None:
        self._metrics.requests_by_code[code].inc()
        self._metrics.latency.observe(time.perf_counter() - start)

    async def drain(self, timeout: float) -> bool:
        """Refuse new calls from now on and wait (up to `timeout`) for the running ones.

        grpc's own `server.stop(grace)` cancels calls that reached the server but were not yet
        handed to a handler; refusing them first with UNAVAILABLE empties that queue quickly,
        so the stop that follows finds (almost) nothing to cancel. True if all finished.
        """
        self.draining = True
        if self._in_flight == 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


_ScoreCall = Callable[
    [bytes, dict[str, list[str | None]] | None, int | None], tuple[bytes | None, int, int]
]


def _run(
    score: _ScoreCall,
    request: bytes,
    python_values: dict[str, list[str | None]] | None,
    defer_over: int | None,
) -> tuple[bytes | None, int, int]:
    try:
        return score(request, python_values, defer_over)
    except rust_core.ScoreError as exc:
        raise RequestError(_status_of(exc), str(getattr(exc, "message", exc))) from exc


def _expired(context: grpc.aio.ServicerContext) -> bool:
    remaining = context.time_remaining()
    return remaining is not None and remaining <= 0


def _status_of(exc: rust_core.ScoreError) -> grpc.StatusCode:
    code = getattr(exc, "code", "INVALID_ARGUMENT")
    try:
        return grpc.StatusCode[str(code)]
    except KeyError:
        return grpc.StatusCode.INVALID_ARGUMENT
