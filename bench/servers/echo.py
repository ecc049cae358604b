"""The echo server: the same Scorer proto on the same runtime, replying a constant.

It parses nothing and scores nothing, so its QPS is the ceiling for a Python grpc.aio server
on this machine: what bidscore would reach if scoring cost nothing. The reply has the shape
of a real one (10 candidates x 2 models) so that the bytes on the wire match.

    python -m bench.servers.echo --port 50070 --workers 2
"""

from __future__ import annotations

import grpc

from bench.servers.runtime import Handler, common_args, serve
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


def main() -> None:
    args = common_args(__doc__ or "").parse_args()
    serve(make_handler, args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
