"""The scoring server's sampled prediction log.

The server calls one method per answered request::

    predlog.log_response(request_bytes, response_bytes)   # or the parsed messages

A sampled response (default 1%) is put on a bounded queue and the call returns; a background
thread parses, encodes and writes it. The request path therefore never waits for a disk or
S3: when the queue is full (a slow or hung destination) or a write fails (disk full, read-only,
upload error) the response's record is dropped and counted in the prometheus counter
`bidscore_predlog_dropped_total{reason=...}`, and memory stays bounded by the queue size.

One record (one JSONL line) per sampled response::

    {"ts": 1795000000.25, "request_id": "r1",
     "models": [{"name": "ctr", "version": "3"}, {"name": "cvr", "version": "1"}],
     "candidates": [{"id": "c1", "scores": [0.012, 0.031], "features": {...}}],
     "context": {...}}

`scores` follow the order of `models`. A model under a running experiment carries
`"experiment": "<name>", "arm": "control"|"treatment"` beside `name` and `version` (the version
that answered the request); other models have neither key. A request the treatment of a shadow
experiment also scored (off the response path) gets a `shadow` list, one entry per shadowed
model, with the treatment's scores in candidate order (the bidder saw control's, in `models` /
`scores`, arm "control")::

    "shadow": [{"name": "ctr", "version": "7", "experiment": "e1", "arm": "treatment",
                "scores": [0.013, 0.029]}]

Requests under an experiment are sampled at `experiment_sample_rate` (default: `sample_rate`;
`control serve --predlog-experiment-sample-rate 1` logs every one). `context` and
per-candidate `features` (the raw wire strings) are present only with
`include_features=True`, and then only for the keys in `feature_names` (the schema's raw
features: a client's other keys are never stored). Every client-supplied string (ids,
feature values) is cut to `MAX_VALUE_CHARS` characters (a cut value ends with `...`), and a
line is at most `max_line_bytes`: a longer record is written without its features
(`"features_dropped": true`) and, if still too long, dropped and counted as `too_large`.
`control.monitor.predictions` reads these files back. Create the log in each worker process
after forking: it owns a thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from bidscore.v1 import scorer_pb2
from pyserver.predlog.files import RecordSink, RotatingFiles, S3Files, recover_orphans
from pyserver.predlog.ratelimit import WarningLimiter

DEFAULT_SAMPLE_RATE = 0.01
DEFAULT_QUEUE_SIZE = 4096  # sampled responses waiting for the writer
DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024
DEFAULT_ROTATE_SECONDS = 300.0
# Client-supplied strings longer than this are cut: the log is for monitoring, not a copy of
# whatever a client sends.
MAX_VALUE_CHARS = 256
DEFAULT_MAX_LINE_BYTES = 256 * 1024
_CUT_MARK = "..."
_BATCH = 256  # records encoded and written per flush
_TICK_SECONDS = 0.5  # how often an idle writer checks whether the open file is due to rotate
# A failing destination fails every batch: one warning line per interval, with a count.
DEFAULT_WARN_INTERVAL = 60.0

# Reasons a record was dropped (the counter's `reason` label).
QUEUE_FULL = "queue_full"
IO_ERROR = "io_error"
ENCODE_ERROR = "encode_error"
SHUTDOWN = "shutdown"
TOO_LARGE = "too_large"
PARTIAL_LINE = "partial_line"  # the cut-off last line of a file a killed worker left behind
DROP_REASONS = (QUEUE_FULL, IO_ERROR, ENCODE_ERROR, SHUTDOWN, TOO_LARGE, PARTIAL_LINE)

_log = logging.getLogger(__name__)

Request = scorer_pb2.ScoreRequest | bytes
Response = scorer_pb2.ScoreResponse | bytes
# One model's experiment: (model, experiment, arm).
Arms = tuple[tuple[str, str, str], ...]
# (ts, request, response, experiments, shadow response)
_Item = tuple[float, Request, Response, Arms, bytes | None]
_STOP = None


class PredictionLog:
    """A sampled, non-blocking prediction log writing rotating JSONL files.

    `destination` is a directory path (or `file:///dir`) or `s3://bucket/prefix?endpoint_url=..`.
    Counters go to `registry` (the server's private registry; default: prometheus' global one).
    """

    def __init__(
        self,
        destination: str,
        *,
        sample_rate: float = DEFAULT_SAMPLE_RATE,
        include_features: bool = False,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
        rotate_seconds: float = DEFAULT_ROTATE_SECONDS,
        registry: CollectorRegistry | None = None,
        seed: int | None = None,
        warn_interval: float = DEFAULT_WARN_INTERVAL,
        feature_names: Iterable[str] | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        experiment_sample_rate: float | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"prediction log sample rate must be in [0, 1], got {sample_rate}")
        if experiment_sample_rate is None:
            experiment_sample_rate = sample_rate
        if not 0.0 <= experiment_sample_rate <= 1.0:
            raise ValueError(
                "prediction log experiment sample rate must be in [0, 1], got "
                f"{experiment_sample_rate}"
            )
        if queue_size < 1:
            raise ValueError(f"prediction log queue size must be at least 1, got {queue_size}")
        if max_line_bytes < 1024:
            raise ValueError(f"prediction log line cap must be >= 1024, got {max_line_bytes}")
        if rotate_bytes < 1 or rotate_seconds <= 0:
            raise ValueError("prediction log rotation size and age must be positive")
        self.destination = destination
        self.sample_rate = sample_rate
        self.experiment_sample_rate = experiment_sample_rate
        self.include_features = include_features
        # None keeps every key (library use); the server passes its schema's raw features.
        self.feature_names = frozenset(feature_names) if feature_names is not None else None
        self.max_line_bytes = max_line_bytes
        self._sink = open_sink(
            destination, rotate_bytes=rotate_bytes, rotate_seconds=rotate_seconds
        )
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=queue_size)
        self._sampler = random.Random(seed)
        reg = REGISTRY if registry is None else registry
        self._registry = reg
        written = Counter(
            "bidscore_predlog_records",
            "Sampled responses written to the prediction log.",
            registry=reg,
        )
        dropped = Counter(
            "bidscore_predlog_dropped",
            "Sampled responses the prediction log dropped: queue_full (destination too slow), "
            "io_error (disk full, read-only, upload failed), encode_error, shutdown, "
            "too_large (a line over the size cap even without features), partial_line (the "
            "last line of a file a killed worker left).",
            ["reason"],
            registry=reg,
        )
        self._written = written
        self._recovered = Counter(
            "bidscore_predlog_recovered_records",
            "Complete records kept from `.part` files that killed workers left behind.",
            registry=reg,
        )
        self._dropped = {r: dropped.labels(reason=r) for r in DROP_REASONS}
        self._warnings = WarningLimiter(_log, warn_interval)
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="bidscore-predlog", daemon=True)
        self._thread.start()

    # --- request path -----------------------------------------------------------------------

    def log_response(
        self, request: Request, response: Response, *, ts: float | None = None
    ) -> bool:
        """Sample and enqueue one answered request; never blocks. True when queued."""
        if not self.sample():
            return False
        return self.enqueue(request, response, ts=ts)

    def sample(self, *, experiment: bool = False) -> bool:
        """Whether to log this request (at the experiment rate for one under an experiment)."""
        rate = self.experiment_sample_rate if experiment else self.sample_rate
        if self._closed or rate == 0.0:
            return False
        return rate >= 1.0 or self._sampler.random() < rate

    def enqueue(
        self,
        request: Request,
        response: Response,
        *,
        ts: float | None = None,
        experiments: Arms = (),
        shadow: bytes | None = None,
    ) -> bool:
        """Queue a sampled request (with its models' experiments and arms, and the shadow
        treatment's serialized ScoreResponse); never blocks. True when queued."""
        if self._closed:
            return False
        item = (time.time() if ts is None else ts, request, response, experiments, shadow)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._dropped[QUEUE_FULL].inc()
            return False
        return True

    # --- lifecycle --------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> bool:
        """Write what is queued, finish the open file and stop the writer.

        Waits at most `timeout` seconds; a writer stuck on a hung destination is abandoned (it is
        a daemon thread) and the records still queued are counted as dropped. True when the
        writer finished in time.
        """
        if self._closed:
            return not self._thread.is_alive()
        self._closed = True
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=max(timeout, 0.0))
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        # Records still queued: the writer is stuck, or one raced in as the log closed.
        left = 0
        with contextlib.suppress(queue.Empty):
            while True:
                if self._queue.get_nowait() is not _STOP:
                    left += 1
        self._dropped[SHUTDOWN].inc(left)
        return not self._thread.is_alive()

    @property
    def written(self) -> int:
        """Records appended to a file so far."""
        return int(self._registry.get_sample_value("bidscore_predlog_records_total") or 0)

    def dropped(self, reason: str | None = None) -> int:
        """Dropped records, for one reason or in total."""
        reasons = [reason] if reason else list(self._dropped)
        return int(
            sum(
                self._registry.get_sample_value("bidscore_predlog_dropped_total", {"reason": r})
                or 0
                for r in reasons
            )
        )

    # --- writer thread ----------------------------------------------------------------------

    def _drain(self) -> None:
        self._recover()
        stopping = False
        while not stopping:
            batch: list[_Item] = []
            try:
                item = self._queue.get(timeout=_TICK_SECONDS)
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                    if len(batch) >= _BATCH:
                        break
                    item = self._queue.get_nowait()
            except queue.Empty:
                pass
            if batch:
                self._write(batch)
            # A close() that timed out on a hung destination could not enqueue the stop
            # marker; once unstuck, the writer sees the flag and ends instead of polling on.
            stopping = stopping or (self._closed and self._queue.empty())
            if stopping or self._sink.rotate_due(time.monotonic()):
                self._finish_file()
        with contextlib.suppress(OSError):
            self._sink.close()
        self._warnings.flush()

    def _recover(self) -> None:
        """Finish the files killed workers left (on the writer thread: start-up never waits)."""
        directory = getattr(self._sink, "directory", None)
        if not isinstance(directory, Path):
            return  # an S3 destination spools in a private temporary directory
        try:
            found = recover_orphans(directory)
        except Exception as exc:  # recovery must never stop the writer
            _log.warning("prediction log: cannot look for orphaned files: %s", exc)
            return
        for item in found:
            # The partial line first: a reader that sees the records sees the drop too.
            self._dropped[PARTIAL_LINE].inc(int(item.partial))
            self._recovered.inc(item.records)
            _log.info(
                "prediction log: recovered %d records from an orphaned file (%s)%s",
                item.records,
                item.path.name,
                ", dropped a partial last line" if item.partial else "",
            )

    def _write(self, batch: list[_Item]) -> None:
        lines: list[bytes] = []
        for ts, request, response, arms, shadow in batch:
            try:
                lines.append(self._encode(ts, request, response, arms, shadow))
            except _TooLargeError:
                self._dropped[TOO_LARGE].inc()
            except Exception as exc:  # one bad message must not stop the log
                self._warnings.warn("cannot encode a response", 1, exc)
                self._dropped[ENCODE_ERROR].inc()
        if not lines:
            return
        try:
            self._sink.write(b"".join(lines), len(lines))
        except OSError as exc:
            lost = getattr(exc, "records", len(lines))
            self._warnings.warn("cannot write", lost, exc)
            self._dropped[IO_ERROR].inc(lost)
            return
        self._written.inc(len(lines))

    def _finish_file(self) -> None:
        try:
            self._sink.rotate()
        except OSError as exc:
            # The file's records were counted as written when appended; their loss is counted
            # here, so `dropped` is exact while `records` counts appends.
            lost = getattr(exc, "records", 0)
            self._warnings.warn("could not finish a file", lost, exc)
            self._dropped[IO_ERROR].inc(lost)

    def _encode(
        self,
        ts: float,
        request: Request,
        response: Response,
        arms: Arms = (),
        shadow: bytes | None = None,
    ) -> bytes:
        req = request if isinstance(request, scorer_pb2.ScoreRequest) else _parse_request(request)
        resp = (
            response
            if isinstance(response, scorer_pb2.ScoreResponse)
            else _parse_response(response)
        )
        extra = _experiment_fields(arms, shadow)
        line = self._line(ts, req, resp, extra, features=self.include_features)
        if len(line) > self.max_line_bytes and self.include_features:
            line = self._line(ts, req, resp, extra, features=False)
        if len(line) > self.max_line_bytes:
            raise _TooLargeError
        return line

    def _line(
        self,
        ts: float,
        req: scorer_pb2.ScoreRequest,
        resp: scorer_pb2.ScoreResponse,
        extra: tuple[dict[str, tuple[str, str]], list[dict[str, Any]]],
        *,
        features: bool,
    ) -> bytes:
        candidates: list[dict[str, Any]] = []
        for i, scored in enumerate(resp.candidates):
            entry: dict[str, Any] = {
                "id": _cut(scored.id),
                "scores": [float(s) for s in scored.scores],
            }
            if features and i < len(req.candidates):
                entry["features"] = self._features(req.candidates[i].features)
            candidates.append(entry)
        record: dict[str, Any] = {
            "ts": ts,
            "request_id": _cut(resp.request_id or req.request_id),
            "models": [_model_entry(m, extra[0]) for m in resp.models],
            "candidates": candidates,
        }
        if extra[1]:
            record["shadow"] = extra[1]
        if features:
            record["context"] = self._features(req.context)
        elif self.include_features:
            record["features_dropped"] = True
        return json.dumps(record, separators=(",", ":")).encode() + b"\n"

    def _features(self, values: Mapping[str, str]) -> dict[str, str]:
        names = self.feature_names
        return {k: _cut(v) for k, v in values.items() if names is None or k in names}


def _model_entry(
    model: scorer_pb2.ModelVersion, arms: dict[str, tuple[str, str]]
) -> dict[str, str]:
    entry = {"name": model.name, "version": model.version}
    arm = arms.get(model.name)
    if arm is not None:
        entry["experiment"], entry["arm"] = arm
    return entry


def _experiment_fields(
    arms: Arms, shadow: bytes | None
) -> tuple[dict[str, tuple[str, str]], list[dict[str, Any]]]:
    """model -> (experiment, arm), and the record's `shadow` list."""
    by_model = {model: (experiment, arm) for model, experiment, arm in arms}
    entries: list[dict[str, Any]] = []
    if shadow is not None:
        reply = _parse_response(shadow)
        for column, model in enumerate(reply.models):
            experiment = by_model.get(model.name, ("", ""))[0]
            entries.append(
                {
                    "name": model.name,
                    "version": model.version,
                    "experiment": experiment,
                    "arm": "treatment",
                    "scores": [float(c.scores[column]) for c in reply.candidates],
                }
            )
    return by_model, entries


class _TooLargeError(Exception):
    """A record over the line cap even without its features."""


def _cut(value: str) -> str:
    if len(value) <= MAX_VALUE_CHARS:
        return value
    return value[: MAX_VALUE_CHARS - len(_CUT_MARK)] + _CUT_MARK


def open_sink(destination: str, *, rotate_bytes: int, rotate_seconds: float) -> RecordSink:
    """A directory (path or file:// URL) or an S3 prefix."""
    if destination.startswith("s3://"):
        return S3Files(destination, rotate_bytes=rotate_bytes, rotate_seconds=rotate_seconds)
    path = destination.removeprefix("file://")
    if not path:
        raise ValueError("prediction log destination is empty")
    return RotatingFiles(Path(path), rotate_bytes=rotate_bytes, rotate_seconds=rotate_seconds)


def _parse_request(data: bytes) -> scorer_pb2.ScoreRequest:
    message = scorer_pb2.ScoreRequest()
    message.ParseFromString(data)
    return message


def _parse_response(data: bytes) -> scorer_pb2.ScoreResponse:
    message = scorer_pb2.ScoreResponse()
    message.ParseFromString(data)
    return message
