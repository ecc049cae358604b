"""Explicit permissions for what bidscore writes to disk: artifacts, manifests, the registry.

Modes used to come from the process umask, so a model file or the registry database could be
world-writable (umask 0) on one host and unreadable by the monitoring group on another. Every
file bidscore creates gets FILE_MODE and every directory it creates DIR_MODE, set with
fchmod/chmod after creation because the umask can only remove bits. Directories that already
exist keep the mode their owner gave them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

FILE_MODE = 0o640  # owner writes, the group (monitoring, serving) reads, others nothing
DIR_MODE = 0o750


def make_dirs(directory: Path, mode: int = DIR_MODE) -> None:
    """Create `directory` and its missing parents, each with `mode` (existing ones untouched)."""
    missing: list[Path] = []
    current = directory
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            path.mkdir(mode=mode)
            path.chmod(mode)


def create_file(path: Path, mode: int = FILE_MODE) -> IO[bytes]:
    """A new file (it must not exist), opened for binary writing, with exactly `mode`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise
