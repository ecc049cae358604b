"""The one exception the request path raises for a request it refuses."""

from __future__ import annotations

import grpc


class RequestError(Exception):
    """A request the server refuses, with the gRPC status to answer and a one-line reason."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
