"""The echo server: the same Scorer proto on the same runtime, replying a constant.

It parses nothing and scores nothing, so its QPS is the ceiling for a Python grpc.aio server
on this machine: what bidscore would reach if scoring cost nothing. The reply has the shape
of a real one (10 candidates x 2 models) so that the bytes on the wire match.

ScoreStream is the ceiling of the stream path: a reader task and a writer, like pyserver's,
answering each message with the constant reply plus the message's `request_id` (the client
matches responses by it), which is the one thing it parses (with upb).

    python -m bench.servers.echo --port 50070 --workers 2
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from bench.servers.runtime import Handler, StreamHandler, common_args, serve
from bidscore.v1 import scorer_pb2


def constant_reply(candidates: int = 10, models: tuple[str, ...] = ("ctr", "cvr")) -> bytes:
    reply = scorer_pb2.ScoreResponse(
        request_id="echo",
        models=[scorer_pb2.ModelVersion(name=name, version="1") for name in models],
        candidates=[
            scorer_pb2.CandidateScores(id=f"c{i}", scores=[0.01] * len(models))
            for i in range(candidates)
        ],
    )
    return reply.SerializeToString()


def make_handler() -> Handler:
    reply = constant_reply()

    async def score(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        return reply

    return score


def make_stream_handler() -> StreamHandler:
    # Without request_id: each response appends its own field 1.
    body = _without_id(constant_reply())
    parse = scorer_pb2.ScoreRequest.FromString

    async def score_stream(
        _requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> None:
        waiting: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def read() -> None:
            try:
                while (message := await context.read()) is not grpc.aio.EOF:
                    assert isinstance(message, bytes)
                    waiting.put_nowait(message)
            finally:
                waiting.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (message := await waiting.get()) is not None:
                request_id = parse(message).request_id.encode()
                await context.write(body + b"\x0a" + _uvarint(len(request_id)) + request_id)
        finally:
            reader.cancel()

    return score_stream


def _without_id(reply: bytes) -> bytes:
    message = scorer_pb2.ScoreResponse.FromString(reply)
    message.ClearField("request_id")
    return message.SerializeToString()


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def main() -> None:
    args = common_args(__doc__ or "").parse_args()
    serve(make_handler, args.host, args.port, args.workers, make_stream_handler)


if __name__ == "__main__":
    main()
