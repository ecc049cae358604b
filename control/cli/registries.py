"""Opening the registry from a command: reading commands never create one.

A mistyped `sqlite:///` path used to create a new, empty registry even for `models list`,
which then showed nothing, and `serve` waited forever for an alias. Reading commands refuse
a registry that does not exist (one line naming the path). Writing commands (`train`,
`retrain`) create it and say so once on stderr when they succeed; one that fails removes the
registry it created, so a typo leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bidscore.registry import Registry, open_registry
from control.cli.options import registry_url
from control.cli.output import err_console

# SQLite's write-ahead log and shared-memory files beside the database.
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def for_reading(value: str | None) -> Registry:
    """The registry of `--registry` (or the default); RegistryError if it does not exist."""
    return open_registry(registry_url(value), create=False)


@contextlib.contextmanager
def for_writing(value: str | None) -> Iterator[Registry]:
    """The registry of `--registry` (or the default), created if needed: announced on
    stderr if the block succeeds, deleted again if it fails."""
    registry = open_registry(registry_url(value), create=True)
    created = bool(getattr(registry, "created", False))
    path = getattr(registry, "path", None)
    try:
        yield registry
    except BaseException:
        if created and isinstance(path, Path):
            for name in (str(path), *(f"{path}{suffix}" for suffix in _SQLITE_SIDE_FILES)):
                with contextlib.suppress(OSError):
                    Path(name).unlink()
        raise
    if created:
        err_console.print(
            f"created a new registry at {path}", markup=False, highlight=False, soft_wrap=True
        )
