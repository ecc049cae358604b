"""The model registry: versions, alias pointers (compare-and-set), history, locks, runs.

`open_registry(url)` chooses the backend by URL:
- `sqlite:///path/registry.db` — the embedded default (one file, WAL mode);
- `dynamodb://TABLE?region=..&endpoint_url=..&create=1` — one DynamoDB table;
  `create=1` creates the table on first use.
"""

from __future__ import annotations

import time

from bidscore.errors import ConflictError, NotFoundError, RegistryError
from bidscore.registry.base import Alias, AliasMove, Clock, Registry, Version, effective_stack

__all__ = [
    "Alias",
    "AliasMove",
    "Clock",
    "ConflictError",
    "NotFoundError",
    "Registry",
    "RegistryError",
    "Version",
    "effective_stack",
    "open_registry",
]


def open_registry(url: str, *, clock: Clock = time.time) -> Registry:
    """The registry at `url`; RegistryError with one line if it cannot be used. `clock`
    (seconds since the epoch) decides lock expiry; tests pass a fake one."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "sqlite":
        from bidscore.registry.sqlite import SqliteRegistry  # noqa: PLC0415 -- no boto3 for sqlite

        return SqliteRegistry(url, clock=clock)
    if scheme == "dynamodb":
        try:
            from bidscore.registry.dynamodb import DynamoRegistry  # noqa: PLC0415 -- boto3 is slow to import
        except ImportError as exc:  # boto3 comes with the [aws] extra
            raise RegistryError(
                f"a dynamodb:// registry needs boto3 ({exc}): pip install 'bidscore[aws]'"
            ) from None
        return DynamoRegistry(url, clock=clock)
    raise RegistryError(
        f"unsupported registry URL {url!r}: use sqlite:///path/registry.db or dynamodb://TABLE?region=.."
    )
