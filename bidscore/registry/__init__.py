"""The model registry: versions, alias pointers (compare-and-set), history, locks, runs.

`open_registry(url)` chooses the backend by URL:
- `sqlite:///path/registry.db` — the embedded default (one file, WAL mode);
- `dynamodb://TABLE?region=..&endpoint_url=..&create=1` — one DynamoDB table;
  `create=1` creates the table on first use.

A SQLite registry file is created only when asked (`create=True`, the writing commands): a
mistyped path given to a reading command or to the server is an error naming the path, not a
new empty registry.
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
    "missing_registry",
    "open_registry",
]


def open_registry(url: str, *, clock: Clock = time.time, create: bool = True) -> Registry:
    """The registry at `url`; RegistryError with one line if it cannot be used. `clock`
    (seconds since the epoch) decides lock expiry; tests pass a fake one. With
    `create=False` a SQLite file that does not exist is a RegistryError naming the path (a
    DynamoDB table is created only with `create=1` in its URL, whatever `create` says)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "sqlite":
        from bidscore.registry.sqlite import SqliteRegistry  # noqa: PLC0415 -- no boto3 for sqlite

        return SqliteRegistry(url, clock=clock, create=create)
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


def missing_registry(url: str) -> str | None:
    """One line saying that the registry at `url` does not exist, or None if it does (or
    cannot be known without a network call: a DynamoDB table is checked when opened)."""
    if not url.startswith("sqlite://"):
        return None
    from bidscore.registry.sqlite import missing_message  # noqa: PLC0415 -- no sqlite3 import

    return missing_message(url)
