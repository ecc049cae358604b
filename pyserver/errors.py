"""The server's own exceptions, under one base so a caller can catch "the server refused"."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: settings and their errors load without grpc
    import grpc


class ServerError(Exception):
    """Base of every failure the server raises on purpose; the message is one line."""


class ConfigError(ServerError, ValueError):
    """A setting that cannot work; the message is one line meant for the operator."""


class RequestError(ServerError):
    """A request the server refuses, with the gRPC status to answer and a one-line reason."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RefusedArtifact(ServerError):
    """A version that must not be served (bad checksum, fingerprint, format or manifest);
    `reason` is the short label counted in metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class WarmupError(ServerError):
    """A freshly loaded model produced a wrong answer for the warm-up request."""
