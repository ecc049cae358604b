"""Where the prediction log's records end up: rotating JSONL files in a directory or under an
S3 prefix.

Only the prediction log's background thread calls these classes, so they hold no locks. A file
is written as `<name>.jsonl.part` and renamed to `<name>.jsonl` when it is rotated, so a reader
that takes only `*.jsonl` never sees a half-written file. Every I/O failure surfaces as
`OSError` (S3 failures are converted), which the caller counts as dropped records.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from bidscore.modes import create_file, make_dirs

FILE_PREFIX = "predictions-"
FILE_SUFFIX = ".jsonl"
PART_SUFFIX = ".part"
# Files and directories get bidscore.modes' explicit modes, whatever the umask: the log holds
# traffic (the group may read it for monitoring, nobody else), only the server writes.


class LostRecordsError(OSError):
    """An I/O failure, with the number of records it lost."""

    def __init__(self, message: str, records: int) -> None:
        super().__init__(message)
        self.records = records


class RecordSink(Protocol):
    """A destination for encoded JSONL records."""

    def write(self, data: bytes, records: int) -> None:
        """Append complete lines; raise OSError (LostRecordsError) when they were not stored."""

    def rotate_due(self, now: float) -> bool:
        """Whether the open file is old or big enough to be finished."""

    def rotate(self) -> None:
        """Finish the open file (rename or upload); raise OSError if its records were lost."""

    def close(self) -> None:
        """Finish the open file and release resources."""


def file_name(seq: int, now: float | None = None) -> str:
    """`predictions-20261127T011500-host-1234-000001.jsonl`: sortable by time, unique per
    process, so several workers can share one directory or prefix."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now if now is not None else time.time()))
    host = socket.gethostname().replace("-", "_") or "host"
    return f"{FILE_PREFIX}{stamp}-{host}-{os.getpid()}-{seq:06d}{FILE_SUFFIX}"


@dataclass
class _OpenFile:
    path: Path
    handle: IO[bytes]
    opened_at: float
    size: int = 0
    records: int = 0


class RotatingFiles:
    """JSONL files in one directory, rotated by size or age.

    On a write error (disk full, read-only, directory gone) the open file is cut back to its
    last complete line and finished, so that what it holds stays readable; the next write
    opens a new file.
    """

    def __init__(self, directory: Path, *, rotate_bytes: int, rotate_seconds: float) -> None:
        self.directory = directory
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self._seq = itertools.count(1)
        self._open: _OpenFile | None = None
        # Paths of finished files, for the S3 uploader that wraps this class.
        self.finished: list[tuple[Path, int]] = []

    def write(self, data: bytes, records: int) -> None:
        current = self._open or self._open_new()
        try:
            current.handle.write(data)
            # Flushed per batch so that a full disk is noticed (and counted) now, not at close.
            current.handle.flush()
        except OSError as exc:
            lost_before = self._abandon(current)
            raise LostRecordsError(str(exc), records + lost_before) from exc
        current.size += len(data)
        current.records += records

    def rotate_due(self, now: float) -> bool:
        current = self._open
        if current is None:
            return False
        return current.size >= self.rotate_bytes or now - current.opened_at >= self.rotate_seconds

    def rotate(self) -> None:
        current, self._open = self._open, None
        if current is None:
            return
        try:
            current.handle.close()
            final = current.path.with_suffix("")  # drop ".part"
            current.path.rename(final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                current.path.unlink()
            raise LostRecordsError(str(exc), current.records) from exc
        self.finished.append((final, current.records))

    def close(self) -> None:
        self.rotate()

    def _open_new(self) -> _OpenFile:
        make_dirs(self.directory)
        now = time.time()
        path = self.directory / (file_name(next(self._seq), now) + PART_SUFFIX)
        handle = create_file(path)
        self._open = _OpenFile(path=path, handle=handle, opened_at=time.monotonic())
        return self._open

    def _abandon(self, current: _OpenFile) -> int:
        """Keep the complete lines written so far, drop the partial batch, finish the file.

        Returns how many earlier records were lost too (when even that fails)."""
        self._open = None
        with contextlib.suppress(OSError):
            # Closing flushes the failed batch again; its error is the one already raised.
            current.handle.close()
        try:
            with current.path.open("r+b") as handle:
                handle.truncate(current.size)
            if current.size:
                final = current.path.with_suffix("")
                current.path.rename(final)
                self.finished.append((final, current.records))
            else:
                current.path.unlink()
        except OSError:
            with contextlib.suppress(OSError):
                current.path.unlink()
            return current.records
        return 0


@dataclass(frozen=True)
class Recovered:
    path: Path  # the finished file
    records: int  # complete lines kept
    partial: bool  # a partial last line was cut off


def recover_orphans(directory: Path) -> list[Recovered]:
    """Finish the `.part` files a killed process of this host left in `directory`.

    A worker killed with SIGKILL (or a crashed host) never renames its open file, and the
    monitor reads only `*.jsonl`: those records would be invisible for good. A part file is an
    orphan when its writer (host and pid are in its name) is this host and that pid is no
    longer running; parts of live workers (which share the directory) and of other hosts are
    left alone. Complete lines are kept; a partial last line is cut off.
    """
    if not directory.is_dir():
        return []
    host = socket.gethostname().replace("-", "_") or "host"
    recovered = []
    for part in sorted(directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}{PART_SUFFIX}")):
        fields = part.name.removesuffix(FILE_SUFFIX + PART_SUFFIX).split("-")
        if len(fields) < 5 or fields[-3] != host or not fields[-2].isdigit():
            continue
        if _running(int(fields[-2])):
            continue
        with contextlib.suppress(OSError):
            recovered.append(_finish_orphan(part))
    return recovered


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _finish_orphan(part: Path) -> Recovered:
    data = part.read_bytes()
    complete = data.rfind(b"\n") + 1  # 0 when not even one line is complete
    partial = complete < len(data)
    if complete == 0:
        part.unlink()
        return Recovered(part.with_suffix(""), 0, partial)
    if partial:
        with part.open("r+b") as handle:
            handle.truncate(complete)
    final = part.with_suffix("")  # drop ".part"
    part.rename(final)
    return Recovered(final, data.count(b"\n", 0, complete), partial)


class S3Files:
    """Rotating files spooled in a local temporary directory and uploaded to an S3 prefix when
    finished. An upload failure loses that file's records (raised as OSError)."""

    def __init__(self, url: str, *, rotate_bytes: int, rotate_seconds: float) -> None:
        self.bucket, self.prefix, self._endpoint_url, self._region = parse_s3_url(url)
        self._client: Any = None
        self._spool = Path(tempfile.mkdtemp(prefix="bidscore-predlog-"))
        self._files = RotatingFiles(
            self._spool, rotate_bytes=rotate_bytes, rotate_seconds=rotate_seconds
        )

    def write(self, data: bytes, records: int) -> None:
        self._files.write(data, records)

    def rotate_due(self, now: float) -> bool:
        return self._files.rotate_due(now)

    def rotate(self) -> None:
        self._files.rotate()
        self._upload_finished()

    def close(self) -> None:
        try:
            self.rotate()
        finally:
            shutil.rmtree(self._spool, ignore_errors=True)

    def _upload_finished(self) -> None:
        pending, self._files.finished = self._files.finished, []
        lost = 0
        for path, records in pending:
            key = f"{self.prefix}/{path.name}" if self.prefix else path.name
            try:
                with path.open("rb") as body:
                    self._s3().put_object(Bucket=self.bucket, Key=key, Body=body)
            except Exception:  # botocore raises many types; all mean "not stored"
                lost += records
            finally:
                with contextlib.suppress(OSError):
                    path.unlink()
        if lost:
            raise LostRecordsError(f"upload to s3://{self.bucket}/{self.prefix} failed", lost)

    def _s3(self) -> Any:
        if self._client is None:
            import boto3  # noqa: PLC0415 - only S3 destinations pay for importing boto3
            from botocore.config import Config  # noqa: PLC0415

            # Short timeouts and few retries: a hung endpoint must not stall the writer for
            # minutes while the queue fills (records are dropped and counted instead).
            config = Config(
                connect_timeout=5, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}
            )
            self._client = boto3.client(
                "s3", config=config, endpoint_url=self._endpoint_url, region_name=self._region
            )
        return self._client


def parse_s3_url(url: str) -> tuple[str, str, str | None, str | None]:
    """`s3://bucket/prefix?endpoint_url=..&region=..` -> (bucket, prefix, endpoint, region)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an S3 URL (s3://bucket/prefix): {url!r}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"endpoint_url", "region"}
    if unknown:
        raise ValueError(f"unknown S3 URL parameter(s) {sorted(unknown)} in {url!r}")
    return parts.netloc, parts.path.strip("/"), query.get("endpoint_url"), query.get("region")
