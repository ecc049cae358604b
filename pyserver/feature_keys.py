"""Feature keys the schema does not know: counted, and refused with `--strict-features`.

rust_core looks up the features each model needs and never reads the other keys, so a client
that misspells `bid_floor` as `bidfloor` gets the default value and no error. Finding such keys
means parsing the request in Python (~60 us for 64 candidates) and walking every key (as much
again): too dear for every request when nothing is refused. So without `--strict-features` one
request in `SAMPLE_EVERY` is checked (the counter is a sample, enough to see that a client sends
a wrong name); with it every request is checked and one unknown key is INVALID_ARGUMENT.

Context keys that are not features but are meant to be sent — the keys experiments assign
requests by (`--context-keys`, default `user_id`, and the key of every running experiment) —
are known too: never counted, never refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import grpc
from google.protobuf.message import DecodeError
from prometheus_client import CollectorRegistry, Counter

from bidscore.v1 import scorer_pb2
from pyserver.errors import RequestError
from pyserver.feature_ranges import RangeChecks, Ranges

SAMPLE_EVERY = 32
# Label values are client-controlled: the first MAX_NAMES distinct names get a label of their
# own and the rest share "other", so a client sending random keys cannot grow the registry.
MAX_NAMES = 100
OTHER = "other"


class UnknownFeatures:
    """Checks a request's context and candidate keys against the schema's raw features."""

    def __init__(
        self,
        known: Iterable[str],
        *,
        strict: bool,
        registry: CollectorRegistry,
        sample_every: int = SAMPLE_EVERY,
        ranges: RangeChecks | None = None,
        context_keys: Iterable[str] = (),
    ) -> None:
        self.known = frozenset(known)
        self.known_context = self.known | frozenset(context_keys)
        self.strict = strict
        self._ranges = ranges
        self._every = 1 if strict else max(1, sample_every)
        self._tick = itertools.count()
        self._counter = Counter(
            "bidscore_unknown_features",
            "Feature keys not in the schema, by name (the first 100 names, then 'other'); "
            f"counted in every request with --strict-features, else in 1 of {self._every}.",
            ["name"],
            registry=registry,
        )
        self._checked = Counter(
            "bidscore_unknown_feature_checks",
            "Requests whose feature keys were checked against the schema.",
            registry=registry,
        )
        self._names: set[str] = set()

    def check(
        self,
        request: bytes,
        message: scorer_pb2.ScoreRequest | None = None,
        ranges: Ranges | None = None,
        context_keys: frozenset[str] = frozenset(),
    ) -> None:
        """Count the unknown keys (and, with `ranges`, the numeric values out of their training
        range) of a (sampled) request; RequestError when strict. `context_keys`: more keys
        the context may carry (those of the running experiments)."""
        if next(self._tick) % self._every:
            return
        if message is None:
            try:
                message = scorer_pb2.ScoreRequest.FromString(request)
            except DecodeError:
                return  # rust_core gives the precise error
        self._checked.inc()
        known = self.known
        first: str | None = None
        in_context = self.known_context | context_keys if context_keys else self.known_context
        if not in_context.issuperset(message.context):
            unknown = sorted(set(message.context) - in_context)
            self._count(unknown)
            first = f"unknown feature {unknown[0]!r} in the request context"
        for index, candidate in enumerate(message.candidates):
            # issuperset walks the map in C: the common all-known case stays cheap.
            if not known.issuperset(candidate.features):
                unknown = sorted(set(candidate.features) - known)
                self._count(unknown)
                if first is None:
                    first = (
                        f"unknown feature {unknown[0]!r} in candidate {index} ({candidate.id!r})"
                    )
        if first is not None and self.strict:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{first}; this server refuses keys outside the schema (--strict-features)",
            )
        if self._ranges is not None:
            self._ranges.check(message, ranges or {})

    def _count(self, names: list[str]) -> None:
        for name in names:
            if name not in self._names and len(self._names) < MAX_NAMES:
                self._names.add(name)
            self._counter.labels(name=name if name in self._names else OTHER).inc()
