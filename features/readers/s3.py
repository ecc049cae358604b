"""S3 access for the readers: list partition objects, fetch objects, read Parquet footers.

URLs are `s3://bucket/prefix`, optionally `?endpoint_url=...&region=...` as for the artifact
store; boto3 also honours `AWS_ENDPOINT_URL` and the usual credential chain. boto3 comes with
the `bidscore[aws]` extra: without it, local logs read as usual and an `s3://` URL is a
one-line LogReadError saying what to install.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow.parquet as pq

from features.readers.cast import LogReadError

try:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # no [aws] extra: `client` says so; the except clauses below catch nothing
    boto3 = None  # type: ignore[assignment]  # checked in `client`
    _CLIENT_ERRORS: tuple[type[Exception], ...] = ()
    _AWS_ERRORS: tuple[type[Exception], ...] = ()
else:
    _CLIENT_ERRORS = (ClientError,)
    _AWS_ERRORS = (BotoCoreError, ClientError)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str  # an object key, or a prefix without trailing slash
    endpoint_url: str | None
    region: str | None
    query: str = ""  # kept on derived URLs so a partition's URL reaches the same endpoint

    def name(self, key: str | None = None) -> str:
        """The object's plain URL, for messages and file-type detection."""
        return f"s3://{self.bucket}/{self.key if key is None else key}"

    def url(self, key: str | None = None) -> str:
        tail = f"?{self.query}" if self.query else ""
        return f"s3://{self.bucket}/{self.key if key is None else key}{tail}"


def is_s3(path: str) -> bool:
    return path.startswith("s3://")


def parse_s3(url: str) -> S3Location:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise LogReadError(f"{url}: not an s3://bucket/prefix URL")
    query = parse_qs(parts.query)
    return S3Location(
        bucket=parts.netloc,
        key=parts.path.strip("/"),
        endpoint_url=query.get("endpoint_url", [None])[0],
        region=query.get("region", [None])[0],
        query=parts.query,
    )


def client(loc: S3Location) -> Any:
    if boto3 is None:
        raise LogReadError(
            f"{loc.name()}: reading s3:// logs needs boto3: pip install 'bidscore[aws]'"
        )
    return boto3.client("s3", endpoint_url=loc.endpoint_url, region_name=loc.region)


def list_keys(loc: S3Location) -> list[tuple[str, int]]:
    """(key, size) of every object under the prefix."""
    prefix = f"{loc.key}/" if loc.key else ""
    out: list[tuple[str, int]] = []
    try:
        pages = (
            client(loc).get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix)
        )
        for page in pages:
            out.extend((obj["Key"], int(obj["Size"])) for obj in page.get("Contents", []))
    except _AWS_ERRORS as exc:
        raise LogReadError(f"{loc.name()}: cannot list objects ({exc})") from None
    return out


def object_exists(loc: S3Location) -> bool:
    try:
        client(loc).head_object(Bucket=loc.bucket, Key=loc.key)
    except _CLIENT_ERRORS:
        return False
    except _AWS_ERRORS as exc:
        raise LogReadError(f"{loc.name()}: cannot reach S3 ({exc})") from None
    return True


def fetch(loc: S3Location, key: str) -> bytes:
    try:
        body = client(loc).get_object(Bucket=loc.bucket, Key=key)["Body"]
        return bytes(body.read())
    except _AWS_ERRORS as exc:
        raise LogReadError(f"{loc.name(key)}: cannot fetch ({exc})") from None


class _RangedObject(io.RawIOBase):
    """A seekable read-only view of an S3 object, by ranged GETs: reading a Parquet footer
    touches a few kilobytes, not the whole file."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int) -> None:
        super().__init__()
        self._s3, self._bucket, self._key, self._size, self._pos = s3, bucket, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        end = min(self._pos + len(buffer), self._size)
        if end <= self._pos:
            return 0
        rng = f"bytes={self._pos}-{end - 1}"
        data = self._s3.get_object(Bucket=self._bucket, Key=self._key, Range=rng)["Body"].read()
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


# A Parquet footer read over S3 fails with an S3 error or pyarrow's OSError/ValueError.
_PARQUET_ERRORS: tuple[type[Exception], ...] = (*_AWS_ERRORS, OSError, ValueError)


def parquet_rows(loc: S3Location, key: str, size: int) -> int:
    """Row count from the Parquet footer."""
    try:
        with _RangedObject(client(loc), loc.bucket, key, size) as obj:
            return int(pq.ParquetFile(obj).metadata.num_rows)
    except _PARQUET_ERRORS as exc:
        raise LogReadError(f"{loc.name(key)}: not a readable Parquet file ({exc})") from None
