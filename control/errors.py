"""Failures only the control plane raises; the shared ones live in `bidscore.errors`."""

from __future__ import annotations

from bidscore.errors import BidscoreError, InputError, NotFoundError


class GateError(BidscoreError):
    """A promotion refused by a metric or compatibility gate."""


class TrainingInputError(InputError):
    """Training data that cannot produce a model (empty, one label value, bad options)."""


class TuningError(TrainingInputError):
    """A search that cannot run or produced nothing (bad options, no trial completed)."""


class UnknownAliasError(NotFoundError):
    """A promotion to an alias the model does not have, without `--create-alias`."""


class ShardError(InputError):
    """Prepared shards that cannot be read: a missing, corrupt or other-version index or shard."""


class WarmStartError(TrainingInputError):
    """A warm start refused: no such version, or a model of another shape or feature spec."""
