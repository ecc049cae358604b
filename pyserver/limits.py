"""Per-request limits checked in Python before rust_core does any work.

The `models` list is the one part of a request whose cost Rust does not bound: every entry
adds a score per candidate to the response, so `models="ctr"` repeated 100,000 times times 64
candidates is 6.4 million scores built on the event loop and a response over the transport
limit. Reading only field 4 with a message class that declares nothing else costs a few
microseconds (upb skips the candidates as unknown bytes), against ~60 us for a full parse.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from pyserver.errors import RequestError

# ScoreResponse overhead, an upper bound in bytes: per candidate the CandidateScores tag,
# length and id tag (the id itself is counted in the request's length), and the packed
# scores' tag and length; per model the ModelVersion tag, lengths and the version string.
_PER_CANDIDATE_BYTES = 16
_PER_MODEL_BYTES = 64
_SCORE_BYTES = 4  # one f32


def _models_only_class() -> type[Message]:
    """A message with only `repeated string models = 4` (ScoreRequest's field number)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="bidscore_internal_models_only.proto", package="bidscore.internal", syntax="proto3"
    )
    message = proto.message_type.add(name="ModelsOnly")
    message.field.add(
        name="models",
        number=4,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    # A private pool: nothing else in the process can see or clash with this type.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName("bidscore.internal.ModelsOnly")
    return message_factory.GetMessageClass(descriptor)


_ModelsOnly = _models_only_class()


def requested_models(request: bytes) -> list[str] | None:
    """The request's `models` entries; None if the bytes do not parse (rust_core then reports
    the precise error, so a malformed request keeps its usual status and message)."""
    try:
        message = _ModelsOnly.FromString(request)
    except DecodeError:
        return None
    return list(message.models)  # type: ignore[attr-defined]


def check_models(models: list[str], max_models: int) -> None:
    """INVALID_ARGUMENT for more than `max_models` entries or a name given twice."""
    if len(models) > max_models:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request names {len(models)} models, over the limit of {max_models} (--max-models)",
        )
    if len(set(models)) != len(models):
        twice = _first_repeated(models)
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request names model {twice!r} more than once; each model at most once "
            f"(and at most {max_models} models, --max-models)",
        )


def _first_repeated(models: list[str]) -> str:
    seen: set[str] = set()
    for name in models:
        if name in seen:
            return name
        seen.add(name)
    return ""


def response_bound(request_bytes: int, candidates: int, models: int) -> int:
    """An upper bound of the ScoreResponse's size in bytes, known before it is built."""
    return (
        request_bytes
        + candidates * (_PER_CANDIDATE_BYTES + _SCORE_BYTES * models)
        + models * _PER_MODEL_BYTES
    )
