"""What an artifact store is: a place where a file becomes visible under a key only once it is
completely written, and from which it can be copied back.

Checksums are the caller's business (`bidscore.manifest.verify_artifact`): a store moves bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from bidscore.errors import StoreError

# Called with the number of bytes transferred since the previous call.
Progress = Callable[[int], None]

# Keys are relative paths of safe segments: they become file names and S3 keys alike.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*")


def check_key(key: str) -> str:
    """`key` if it is a safe relative path (`ctr/2026...-abc.model`), else StoreError."""
    parts = key.split("/")
    if not key or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise StoreError(f"invalid artifact key {key!r}: use relative paths of [A-Za-z0-9_.=+-]")
    return key


class ArtifactStore(Protocol):
    """The artifact-store interface shared by the file and S3 backends."""

    url: str

    def put(self, local_path: Path | str, key: str, progress: Progress | None = None) -> str:
        """Upload `local_path` under `key`; visible only when complete. Returns its URI."""
        ...

    def get(self, uri: str, local_path: Path | str, progress: Progress | None = None) -> None:
        """Download `uri` to `local_path` (written to a temp name, then renamed)."""
        ...

    def local_path(self, uri: str) -> Path | None:
        """The object's path on this machine if the store is a local directory, else None
        (readers may then verify it in place instead of copying it)."""
        ...

    def uri_for(self, key: str) -> str:
        """The URI an object stored under `key` has (whether or not it exists)."""
        ...

    def exists(self, uri: str) -> bool:
        """Whether a complete object is visible at `uri`."""
        ...

    def delete(self, uri: str) -> None:
        """Remove the object at `uri` if it exists."""
        ...

    def list_keys(self, prefix: str = "") -> list[str]:
        """Keys of the complete objects under `prefix`, sorted (temp objects excluded)."""
        ...
