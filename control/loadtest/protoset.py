"""The Scorer service descriptor as a protoset file, so ghz needs no .proto and no reflection."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2

from bidscore.v1 import scorer_pb2


def write_protoset(path: Path) -> Path:
    """Write a FileDescriptorSet of scorer.proto (it imports nothing) to `path`."""
    files = descriptor_pb2.FileDescriptorSet()
    scorer_pb2.DESCRIPTOR.CopyToProto(files.file.add())
    path.write_bytes(files.SerializeToString())
    return path
