"""The embedded artifact store: a directory (`file:///path`).

A put copies to a hidden temp file in the destination directory, fsyncs it and renames it into
place; rename within one directory is atomic, so a reader sees the whole file or nothing, and a
killed upload leaves only a `.tmp-*` file that no key names.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bidscore.errors import StoreError
from bidscore.modes import create_file, make_dirs
from bidscore.store.base import Progress, check_key

_CHUNK = 1 << 20
TEMP_MARK = ".tmp-"


def path_from_uri(uri: str) -> Path:
    """`file:///abs/dir` -> /abs/dir (`file://rel/dir` is relative to the working directory)."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise StoreError(f"not a file URI: {uri!r}")
    text = unquote(parts.netloc + parts.path)
    if not text:
        raise StoreError(f"file URI {uri!r} names no path")
    return Path(text)


def copy_atomically(src: Path, dest: Path, progress: Progress | None = None) -> None:
    """Copy `src` to `dest` through a temp file beside `dest` and an atomic rename; the file
    gets FILE_MODE and new directories DIR_MODE, whatever the umask."""
    make_dirs(dest.parent)
    temp = dest.with_name(f".{dest.name}{TEMP_MARK}{uuid.uuid4().hex}")
    try:
        with src.open("rb") as reader, create_file(temp) as writer:
            while chunk := reader.read(_CHUNK):
                writer.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            writer.flush()
            os.fsync(writer.fileno())
        temp.replace(dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


class FileStore:
    """Artifacts as files under one root directory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.root = path_from_uri(url.split("?", 1)[0]).absolute()

    def uri_for(self, key: str) -> str:
        return (self.root / check_key(key)).as_uri()

    def put(self, local_path: Path | str, key: str, progress: Progress | None = None) -> str:
        src, dest = Path(local_path), self.root / check_key(key)
        try:
            copy_atomically(src, dest, progress)
        except OSError as exc:
            raise StoreError(f"cannot store {src} at {dest}: {exc}") from exc
        return dest.as_uri()

    def get(self, uri: str, local_path: Path | str, progress: Progress | None = None) -> None:
        src = path_from_uri(uri)
        if not src.is_file():
            raise StoreError(f"artifact {uri} not found")
        try:
            copy_atomically(src, Path(local_path), progress)
        except OSError as exc:
            raise StoreError(f"cannot fetch {uri}: {exc}") from exc

    def local_path(self, uri: str) -> Path | None:
        path = path_from_uri(uri)
        return path if path.is_file() else None

    def exists(self, uri: str) -> bool:
        return path_from_uri(uri).is_file()

    def delete(self, uri: str) -> None:
        try:
            path_from_uri(uri).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot delete {uri}: {exc}") from exc

    def list_keys(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and TEMP_MARK not in p.name
        )
        return sorted(k for k in keys if k.startswith(prefix))
