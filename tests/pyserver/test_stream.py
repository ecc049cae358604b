"""ScoreStream against a real server: the same answers as unary Score, bad messages answered
in-stream, hot reload with nothing lost or duplicated, drain on SIGTERM, flow control with a
client that stops reading, and a client that cancels."""

from __future__ import annotations

import collections
import queue
import re
import signal
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from bidscore.v1 import scorer_pb2
from control import datagen
from tests.pyserver.serve_harness import (
    Published,
    ServerFactory,
    ServerProcess,
    TrainedModel,
    free_port,
    metric_value,
    publish_trained,
    raw_score,
    request_bytes,
)
from tests.pyserver.test_service import (
    EXHAUSTED,
    GOOD,
    MALFORMED,
    MAX_CANDIDATES,
    MAX_REQUEST_BYTES,
)
from tests.waiting import wait_until

STREAM_METHOD = "/bidscore.v1.Scorer/ScoreStream"
MAX_IN_FLIGHT = 32

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    trained: dict[str, list[TrainedModel]],
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("stream")
    pub = publish_trained(
        f"sqlite:///{workdir / 'registry.db'}", f"file://{workdir / 'artifacts'}", trained
    )
    factory = ServerFactory(workdir, free_port)
    try:
        yield factory(
            pub.registry_url,
            pub.store_url,
            "--max-request-bytes", str(MAX_REQUEST_BYTES),
            "--max-candidates", str(MAX_CANDIDATES),
            "--stream-max-in-flight", str(MAX_IN_FLIGHT),
        )  # fmt: skip
    finally:
        factory.close()


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as chan:
        yield chan


def open_stream(channel: grpc.Channel) -> grpc.StreamStreamMultiCallable:
    return channel.stream_stream(STREAM_METHOD)


def with_id(data: bytes, request_id: str) -> bytes:
    """`data` with request_id set to `request_id` (a later field 1 wins in protobuf)."""
    raw = request_id.encode()
    return data + b"\x0a" + bytes([len(raw)]) + raw


def stream_all(channel: grpc.Channel, messages: list[bytes]) -> list[bytes]:
    return list(open_stream(channel)(iter(messages), timeout=120))


def test_stream_responses_equal_unary_responses_for_1000_requests(channel: grpc.Channel) -> None:
    payloads = datagen.request_payloads(1000, seed=5, candidates=5)
    requests = [request_bytes(p) for p in payloads]
    unary = {
        p["request_id"]: raw_score(channel)(r, timeout=10)
        for p, r in zip(payloads, requests, strict=True)
    }
    streamed = stream_all(channel, requests)
    assert len(streamed) == len(requests)
    by_id = {scorer_pb2.ScoreResponse.FromString(r).request_id: r for r in streamed}
    assert by_id.keys() == unary.keys()
    for request_id, response in by_id.items():
        # Same encoder, same models: byte-identical responses (scores bit for bit, versions).
        assert response == unary[request_id], request_id
    first = scorer_pb2.ScoreResponse.FromString(streamed[0])
    assert not first.HasField("error")
    assert first.models


def test_a_stream_of_good_and_bad_messages_answers_each_and_goes_on(
    channel: grpc.Channel, server: ServerProcess
) -> None:
    # Everything the unary tests send except what grpc itself cuts off (see the next test).
    bad = [(n, d, c, w) for n, d, c, w in MALFORMED if c != EXHAUSTED]
    messages: list[bytes] = []
    expected: dict[str, tuple[str, tuple[str, ...]]] = {}
    for i, (_, data, code, words) in enumerate(bad):
        messages.append(with_id(GOOD, f"good-{i}"))
        # The request_id before and after the bad bytes: the error response carries the last
        # one read before the first undecodable byte (the bad bytes may hold their own).
        request_id = f"bad-{i}"
        raw = request_id.encode()
        messages.append(with_id(b"\x0a" + bytes([len(raw)]) + raw + data, request_id))
        expected[request_id] = (code.name, words)
    messages.append(with_id(GOOD, "last"))
    before = server.metrics()
    responses = [scorer_pb2.ScoreResponse.FromString(r) for r in stream_all(channel, messages)]
    assert len(responses) == len(messages)
    good = [r for r in responses if not r.HasField("error")]
    errors = [r for r in responses if r.HasField("error")]
    assert sorted(r.request_id for r in good) == sorted(
        [f"good-{i}" for i in range(len(bad))] + ["last"]
    )
    assert all(len(r.candidates) == 3 for r in good)
    assert collections.Counter(r.error.code for r in errors) == collections.Counter(
        code for code, _ in expected.values()
    )
    matched = 0
    for response in errors:
        if response.request_id in expected:
            code, words = expected[response.request_id]
            assert response.error.code == code, response
            assert all(word in response.error.message for word in words), response
            assert not response.candidates
            assert not response.models
            matched += 1
    assert matched >= len(bad) - 3  # the ones that overwrite request_id with their own
    after = server.metrics()
    ok = metric_value(after, "bidscore_stream_messages_total", grpc_code="OK") - metric_value(
        before, "bidscore_stream_messages_total", grpc_code="OK"
    )
    assert ok == len(good)
    assert server.proc.poll() is None


def test_a_message_over_the_transport_limit_ends_the_stream_with_resource_exhausted(
    channel: grpc.Channel,
) -> None:
    # grpc refuses it before any handler sees it (it never reaches memory as a message), so
    # there is no request_id to answer: the stream ends, as documented.
    messages = [with_id(GOOD, "a"), b"x" * (5 * MAX_REQUEST_BYTES)]
    with pytest.raises(grpc.RpcError) as info:
        stream_all(channel, messages)
    assert info.value.code() == EXHAUSTED
    assert len(list(open_stream(channel)(iter([GOOD]), timeout=10))) == 1


class Sender:
    """Feeds a stream from a thread-safe queue and remembers when each id was sent."""

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue()
        self.sent: dict[str, float] = {}
        self._lock = threading.Lock()

    def send(self, request_id: str, data: bytes = GOOD) -> None:
        with self._lock:
            self.sent[request_id] = time.monotonic()
        self.queue.put(with_id(data, request_id))

    def close(self) -> None:
        self.queue.put(None)

    def __iter__(self) -> Iterator[bytes]:
        while (item := self.queue.get()) is not None:
            yield item


def test_alias_moves_during_stream_load_lose_and_duplicate_nothing(
    start_server: ServerFactory, published: Published
) -> None:
    server = start_server(published.registry_url, published.store_url)
    promoted: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for name, versions in published.versions.items():
        promoted[(name, versions[0])].append(0.0)
    sender = Sender()
    received: list[tuple[float, scorer_pb2.ScoreResponse]] = []
    stop = threading.Event()

    def produce() -> None:
        n = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sender.send(f"m{n}")
            n += 1
            # ~1,000 messages a second, several in flight at a time.
            if n % 10 == 0:
                time.sleep(0.01)
        sender.close()

    with grpc.insecure_channel(server.target) as chan:
        call = open_stream(chan)(iter(sender), timeout=60)
        producer = threading.Thread(target=produce, daemon=True)
        producer.start()

        def consume() -> None:
            for data in call:
                received.append((time.monotonic(), scorer_pb2.ScoreResponse.FromString(data)))
            stop.set()

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        moves = 0
        names = sorted(published.versions)
        for move in range(20):
            version_index = (move + 1) % 2
            for name in names:
                version = published.versions[name][version_index]
                published.promote(name, version)
                promoted[(name, version)].append(time.monotonic())
            moves += 1
            time.sleep(0.4)
        producer.join(timeout=30)
        assert stop.wait(timeout=60), "the stream did not end after the client half-closed"
    assert moves == 20
    counts = collections.Counter(r.request_id for _, r in received)
    assert set(counts) == set(sender.sent), "lost or stray responses"
    assert max(counts.values()) == 1, "duplicated responses"
    assert not [r for _, r in received if r.HasField("error")]
    seen_versions = set()
    for at, response in received:
        for model in response.models:
            first = min(promoted[(model.name, model.version)], default=None)
            assert first is not None, model
            assert first <= at, (model, at)
            seen_versions.add((model.name, model.version))
    # The load did see the moves: both versions of a model answered.
    assert len(seen_versions) > len(published.versions)
    assert server.stop() == 0


def test_sigterm_mid_stream_answers_what_was_read_then_unavailable(
    start_server: ServerFactory, published: Published
) -> None:
    server = start_server(published.registry_url, published.store_url)
    sender = Sender()
    received: list[str] = []
    failure: list[grpc.RpcError] = []
    done = threading.Event()
    with grpc.insecure_channel(server.target) as chan:
        call = open_stream(chan)(iter(sender), timeout=60)

        def consume() -> None:
            try:
                for data in call:
                    received.append(scorer_pb2.ScoreResponse.FromString(data).request_id)
            except grpc.RpcError as exc:
                failure.append(exc)
            done.set()

        threading.Thread(target=consume, daemon=True).start()
        n = 0
        # Keep messages flowing before, during and after the signal.
        while len(received) < 200:
            sender.send(f"m{n}")
            n += 1
            if n % 20 == 0:
                time.sleep(0.005)
        server.proc.send_signal(signal.SIGTERM)
        while not done.is_set() and n < 200_000:
            sender.send(f"m{n}")
            n += 1
            if n % 20 == 0:
                time.sleep(0.002)
        assert done.wait(timeout=30)
        sender.close()
    assert failure, received[-5:]
    assert failure[0].code() == grpc.StatusCode.UNAVAILABLE, failure
    assert len(received) == len(set(received))
    assert set(received) <= set(sender.sent)
    assert server.proc.wait(timeout=30) == 0
    # The server's own count: every message it read was answered, and the client got them all.
    log = server.log()
    counts = [
        (int(a), int(b)) for a, b in re.findall(r"stream drained: (\d+) read, (\d+) answered", log)
    ]
    assert counts, log[-2000:]
    assert all(read == answered for read, answered in counts)
    assert sum(read for read, _ in counts) == len(received)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_a_client_that_stops_reading_is_held_back_and_others_keep_their_latency(
    channel: grpc.Channel, server: ServerProcess
) -> None:
    payload = request_bytes(datagen.request_payloads(1, seed=3, candidates=50)[0])
    yielded = [0]

    def flood() -> Iterator[bytes]:
        for n in range(200_000):
            yielded[0] = n
            yield with_id(payload, f"f{n}")

    rss_before = rss_kib(server.proc.pid)
    stuck = open_stream(channel)(flood(), timeout=120)  # never read
    try:
        # The sender stalls once the server stops reading (flow control) ...
        last = [-1]

        def stopped_growing() -> bool:
            current = yielded[0]
            done = current == last[0] and current > MAX_IN_FLIGHT
            last[0] = current
            time.sleep(0.5)
            return done

        wait_until(stopped_growing, timeout=60, message="the flooding client to be held back")
        assert yielded[0] < 20_000, yielded[0]
        # ... the server's memory stays bounded ...
        assert rss_kib(server.proc.pid) - rss_before < 100 * 1024
        # ... and another stream on the same server keeps answering quickly.
        latencies = []
        other = Sender()
        call = open_stream(channel)(iter(other), timeout=60)
        responses = iter(call)
        for n in range(200):
            other.send(f"o{n}")
            start = time.monotonic()
            next(responses)
            latencies.append(time.monotonic() - start)
        other.close()
        assert list(responses) == []
        latencies.sort()
        # A held-back stream would block these outright; the bounds leave room for a busy
        # shared machine (typical here: p50 well under 5 ms).
        assert latencies[len(latencies) // 2] < 0.025, latencies[::20]
        assert latencies[-1] < 1.0, latencies[-5:]
    finally:
        stuck.cancel()
    wait_until(
        lambda: metric_value(server.metrics(), "bidscore_streams_open") == 0,
        timeout=30,
        message="the cancelled stream to be released",
    )


def test_a_client_cancelling_mid_stream_is_not_a_server_fault(
    channel: grpc.Channel, server: ServerProcess
) -> None:
    log_before = len(server.log())
    sender = Sender()
    call = open_stream(channel)(iter(sender), timeout=60)
    responses = iter(call)
    for n in range(50):
        sender.send(f"c{n}")
    for _ in range(10):
        next(responses)
    call.cancel()
    wait_until(
        lambda: metric_value(server.metrics(), "bidscore_streams_open") == 0,
        timeout=30,
        message="the cancelled stream to be released",
    )
    new_log = server.log()[log_before:]
    assert "ERROR" not in new_log, new_log
    assert "Traceback" not in new_log, new_log
    # The worker goes on serving streams.
    assert len(stream_all(channel, [with_id(GOOD, "after")])) == 1
    assert server.proc.poll() is None


def test_repeated_or_too_many_model_names_on_a_stream_are_refused_per_message(
    channel: grpc.Channel,
) -> None:
    # Hardening #1 on the stream path: rust_core refuses more than --max-models names and a
    # model named twice, so a message cannot ask for 20,000 scores per candidate; the stream
    # goes on.
    messages = []
    for request_id, models in [("many", ["ctr"] * 20_000), ("repeated", ["ctr", "cvr", "ctr"])]:
        request = scorer_pb2.ScoreRequest.FromString(with_id(GOOD, request_id))
        request.models[:] = models  # under the test server's request-size limit
        messages.append(request.SerializeToString())
    messages.append(with_id(GOOD, "after"))
    responses = {
        r.request_id: r
        for r in (scorer_pb2.ScoreResponse.FromString(b) for b in stream_all(channel, messages))
    }
    assert responses["many"].error.code == "INVALID_ARGUMENT"
    assert "20000 models, over the limit of 16" in responses["many"].error.message
    assert responses["repeated"].error.code == "INVALID_ARGUMENT"
    assert "more than once" in responses["repeated"].error.message
    assert not responses["after"].HasField("error")
