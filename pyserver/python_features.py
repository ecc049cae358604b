"""The schema's `@property` features (the Python escape hatch), computed per candidate.

Built-in transforms run in rust_core; a plain property must run in Python, on the server as in
training. Building a full schema instance per candidate would coerce every raw field in Python;
instead the property gets a `_LazyRow` that coerces only the fields it actually reads, with the
same rules as `FeatureSchema` (missing -> default, required -> error, str/int/float parsing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from bidscore.v1 import scorer_pb2
from features.schema import FeatureSchema, PythonFeature, RawField
from features.tokenize import python_text
from pyserver.errors import RequestError


def parse_request(request: bytes) -> scorer_pb2.ScoreRequest:
    """The request as a message; INVALID_ARGUMENT if it is not a well-formed ScoreRequest."""
    try:
        return scorer_pb2.ScoreRequest.FromString(request)
    except DecodeError as exc:
        # upb also rejects invalid UTF-8 in string fields here.
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid ScoreRequest: {exc}"
        ) from exc


class _LazyRow:
    """What a property sees as `self`: raw fields looked up in the candidate or the context.

    The candidate's feature map is touched only if the property reads a candidate field:
    materialising a protobuf map costs microseconds per candidate.
    """

    __slots__ = ("_candidate", "_context", "_index", "_raw")

    def __init__(
        self,
        raw: Mapping[str, RawField],
        context: Mapping[str, str],
        candidate: scorer_pb2.Candidate,
        index: int,
    ) -> None:
        self._raw = raw
        self._context = context
        self._candidate = candidate
        self._index = index

    def where(self) -> str:
        return f"candidate {self._index} ({self._candidate.id!r})"

    def __getattr__(self, name: str) -> Any:
        field = self._raw.get(name)
        if field is None:
            raise AttributeError(name)
        if field.source == "candidate":
            text = self._candidate.features.get(name)
        else:
            text = self._context.get(name)
        if text is None:
            if field.default is None:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{self.where()}: missing required feature {name!r}",
                )
            return field.default
        try:
            if field.type == "int":
                return int(text)
            if field.type == "float":
                return float(text)
        except ValueError:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{self.where()}: feature {name!r} value {text!r} does not parse as {field.type}",
            ) from None
        return text


class PythonValues:
    """Parse a request and compute {property name: [text per candidate]}."""

    def __init__(self, schema: type[FeatureSchema], names: Iterable[str]) -> None:
        info = schema.schema_info()
        self._raw = info.raw
        self._features: list[PythonFeature] = [info.python[name] for name in names]

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self._features]

    @staticmethod
    def parse(request: bytes) -> scorer_pb2.ScoreRequest:
        return parse_request(request)

    def for_request(self, request: bytes, max_candidates: int) -> dict[str, list[str | None]]:
        """The values of a serialized request; INVALID_ARGUMENT if it does not parse, has more
        than `max_candidates` candidates or a property fails.

        The count is checked before any property runs: 10,000 candidates must not run 10,000
        times Python code only to be refused by Rust afterwards."""
        message = parse_request(request)
        candidates = len(message.candidates)
        if candidates > max_candidates:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request has {candidates} candidates, over the limit of {max_candidates}",
            )
        return self.compute(message)

    def compute(self, message: scorer_pb2.ScoreRequest) -> dict[str, list[str | None]]:
        context = dict(message.context)  # one copy per request, not a lookup per candidate
        values: dict[str, list[str | None]] = {feature.name: [] for feature in self._features}
        for index, cand in enumerate(message.candidates):
            row = _LazyRow(self._raw, context, cand, index)
            for feature in self._features:
                try:
                    value = feature.fget(row)
                except RequestError:
                    raise
                except Exception as exc:
                    raise RequestError(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"{row.where()}: feature {feature.name!r} failed: "
                        f"{type(exc).__name__}: {exc}",
                    ) from exc
                # The same text as training's (features.tokenize), so Rust parses the same value.
                values[feature.name].append(python_text(value))
        return values
