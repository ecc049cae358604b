"""Fetch one registered model version into the local cache and verify it before use.

Every worker on a host shares one cache directory, and every worker must map the *same*
file (the same inode) for the kernel to share its pages: a download lands in a private
temporary file and is published with `os.link`, which never replaces an existing file, so the
first complete copy wins and later workers map that one.

Verification (`rust_core.load_model` hashes the whole payload: about a second for a 400 MB
FFM) happens once per cached file per worker: `VerifiedFiles` keeps the mapped model of every
file it verified and hands the same one out again while the file is unchanged on disk, so an
alias moving back and forth between two versions (a rollout, a rollback) re-hashes nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import rust_core
from bidscore.registry import Version
from bidscore.store import ArtifactStore
from pyserver.errors import RefusedArtifact
from pyserver.modelset import LoadedModel

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# Cached artifacts kept per model beyond the served one: enough for a quick rollback without
# a download, few enough that a model updated several times a day cannot fill the disk.
KEEP_PER_MODEL = 3
# A cached model is mapped into every worker: a write to it changes live scores and a
# truncation kills the workers (SIGBUS). Files are read-only and the directories writable by
# the server's user only, whatever the umask.
CACHE_FILE_MODE = 0o444
CACHE_DIR_MODE = 0o750


def cache_path(cache_dir: Path, version: Version, checksum: str) -> Path:
    """`<cache>/<model>/<version>-<checksum>.model`: a new artifact never reuses a name."""
    model = _UNSAFE.sub("_", version.model)
    name = f"{_UNSAFE.sub('_', version.version)}-{_UNSAFE.sub('_', checksum)}.model"
    return cache_dir / model / name


def fetch(store: ArtifactStore, version: Version, cache_dir: Path) -> Path:
    """The local copy of the version's artifact, downloading it if it is not cached yet.

    Store errors propagate: they are outages, retried with backoff by the caller.
    """
    checksum = version.manifest.checksum
    if not checksum:
        raise RefusedArtifact(
            "manifest", f"{version.model} version {version.version}: manifest has no checksum"
        )
    final = cache_path(cache_dir, version, checksum)
    if final.exists():
        _make_read_only(final)  # a file cached by an older server may still be writable
        return final
    make_cache_dir(cache_dir)
    make_cache_dir(final.parent)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    try:
        store.get(version.artifact_uri, str(tmp))
        os.chmod(tmp, CACHE_FILE_MODE)
        # FileExistsError: another worker published the same artifact first; use theirs.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def make_cache_dir(directory: Path) -> None:
    """Create `directory` (mode CACHE_DIR_MODE); tighten it if this user owns it."""
    directory.mkdir(mode=CACHE_DIR_MODE, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if directory.stat().st_uid == os.geteuid():
            directory.chmod(CACHE_DIR_MODE)


def _make_read_only(path: Path) -> None:
    with contextlib.suppress(OSError):
        st = path.stat()
        if st.st_uid == os.geteuid() and st.st_mode & 0o777 != CACHE_FILE_MODE:
            path.chmod(CACHE_FILE_MODE)


def load_verified(version: Version, path: Path, expected_fingerprint: str) -> LoadedModel:
    """Map the file and check it against the manifest and the server's own feature spec."""
    where = f"{version.model} version {version.version}"
    try:
        model = rust_core.load_model(str(path))
    except rust_core.ModelFormatError as exc:
        # A cached copy that fails verification is useless to every worker: drop it so a
        # later (fixed) upload under the same checksum is downloaded afresh.
        path.unlink(missing_ok=True)
        raise RefusedArtifact("format", f"{where}: {exc}") from exc
    checksum = version.manifest.checksum
    if model.checksum.lower() != checksum.lower():
        path.unlink(missing_ok=True)
        raise RefusedArtifact(
            "checksum",
            f"{where}: artifact checksum {model.checksum} does not match the manifest's {checksum}",
        )
    check_fingerprint(version, model, expected_fingerprint)
    return LoadedModel(
        name=version.model,
        version=version.version,
        model=model,
        checksum=model.checksum,
        path=str(path),
        created_at=version.manifest.created_at,
    )


@dataclass(frozen=True)
class _Identity:
    """What changes if a file is replaced, rewritten or truncated after verification."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path) -> _Identity:
        st = path.stat()
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class VerifiedFiles:
    """The models this process has verified, by cache file; verify each file once.

    A file is reused only if its path, its checksum (the manifest's, which is also in the
    path) and its identity on disk (device, inode, size, mtime, ctime) are all unchanged:
    a replaced, rewritten or truncated file is verified again from scratch. The fingerprint
    is checked on every load (it is read from the header, no hashing). Entries whose file
    left the cache (`prune`) are dropped, so at most the cached files stay mapped. Used by one
    thread (the reloader).
    """

    def __init__(self) -> None:
        self._files: dict[str, tuple[_Identity, LoadedModel]] = {}

    def __len__(self) -> int:
        return len(self._files)

    def load(self, version: Version, path: Path, expected_fingerprint: str) -> LoadedModel:
        """`load_verified`, without re-hashing a file this object verified before."""
        self._forget_missing()
        key = str(path)
        checksum = version.manifest.checksum.lower()
        known = self._files.get(key)
        if known is not None:
            identity, loaded = known
            try:
                unchanged = _Identity.of(path) == identity
            except OSError:
                unchanged = False
            if unchanged and loaded.checksum.lower() == checksum:
                check_fingerprint(version, loaded.model, expected_fingerprint)
                return replace(loaded, name=version.model, version=version.version)
            del self._files[key]
        # The identity is taken before mapping: a change during the load shows next time.
        identity = _Identity.of(path)
        loaded = load_verified(version, path, expected_fingerprint)
        self._files[key] = (identity, loaded)
        return loaded

    def changed(self, path: Path) -> str | None:
        """How a file this object verified differs on disk now (None: unchanged or unknown).

        Checked on every poll for the served files: a file written or truncated in place is
        noticed within one poll interval instead of serving altered weights (or SIGBUS)."""
        known = self._files.get(str(path))
        if known is None:
            return None
        identity, _ = known
        try:
            now = _Identity.of(path)
        except OSError as exc:
            return f"cannot stat it: {exc}"
        if now == identity:
            return None
        if (now.device, now.inode) != (identity.device, identity.inode):
            return "replaced by another file"
        if now.size != identity.size:
            return f"size {identity.size} -> {now.size} bytes"
        return "modified in place"

    def in_place(self, path: Path) -> bool:
        """Whether `path` is still the very inode this object verified (edited, not replaced)."""
        known = self._files.get(str(path))
        try:
            st = path.stat()
        except OSError:
            return False
        return known is not None and (st.st_dev, st.st_ino) == (
            known[0].device,
            known[0].inode,
        )

    def forget(self, path: Path) -> None:
        self._files.pop(str(path), None)

    def _forget_missing(self) -> None:
        for key in [k for k in self._files if not os.path.exists(k)]:
            del self._files[key]


def check_fingerprint(version: Version, model: rust_core.Model, expected: str) -> None:
    if model.fingerprint.lower() != expected.lower():
        raise RefusedArtifact(
            "fingerprint",
            f"{version.model} version {version.version}: feature-spec fingerprint "
            f"{model.fingerprint} is not this server's {expected} (the model was trained with "
            "different feature code)",
        )


def prune(cache_dir: Path, model: str, serving: Path, keep: int = KEEP_PER_MODEL) -> list[Path]:
    """Delete all but the `keep` newest cached artifacts of `model` (never `serving`).

    Safe while other workers map a deleted file: the kernel keeps its pages until the last
    mapping goes. A worker that was about to open it sees an I/O error, which the reloader
    treats as an outage and retries (downloading again).
    """
    directory = cache_dir / _UNSAFE.sub("_", model)
    files = sorted(directory.glob("*.model"), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for path in files[keep:]:
        if path != serving:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
