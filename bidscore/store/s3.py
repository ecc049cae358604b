"""The production artifact store: `s3://bucket/prefix?endpoint_url=..&region=..`.

A put uploads to a temporary key under `<prefix>/.tmp/`, copies it server-side to the final
key and deletes the temporary one. The final key therefore appears only once the whole object
exists; a failed upload deletes its temp object (boto3 aborts a failed multipart upload itself),
and a killed process leaves at most an object under `.tmp/` or an incomplete multipart upload,
neither visible at any final key (a bucket lifecycle rule should expire both).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bidscore.errors import StoreError
from bidscore.store.base import Progress, check_key

# Fail fast when S3 is unreachable rather than after botocore's default retries.
_CLIENT_CONFIG = Config(
    connect_timeout=2, read_timeout=30, retries={"total_max_attempts": 3, "mode": "standard"}
)
TEMP_DIR = ".tmp"
# Multipart transfers in parallel: model files reach hundreds of MB.
_TRANSFER = TransferConfig(max_concurrency=4)


def parse_url(url: str) -> tuple[str, str, str | None, str | None]:
    """`s3://bucket/prefix?endpoint_url=..&region=..` -> (bucket, prefix, endpoint, region)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise StoreError(f"store URL {url!r} names no bucket (s3://bucket/prefix)")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"endpoint_url", "region"}
    if unknown:
        raise StoreError(f"store URL {url!r}: unknown parameter(s) {sorted(unknown)}")
    return parts.netloc, parts.path.strip("/"), query.get("endpoint_url"), query.get("region")


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key)."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise StoreError(f"not an S3 object URI: {uri!r}")
    return parts.netloc, parts.path.lstrip("/")


@contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    """Turn botocore failures into one-line StoreErrors."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in {"404", "NoSuchKey", "NotFound"}:
            raise StoreError(f"{what}: not found") from exc
        if code == "NoSuchBucket":
            raise StoreError(f"{what}: bucket does not exist") from exc
        raise StoreError(f"{what}: {code}: {error.get('Message', exc)}") from exc
    except BotoCoreError as exc:
        raise StoreError(f"{what}: S3 unreachable: {exc}") from exc
    except Boto3Error as exc:
        # boto3's transfer manager wraps the client error (S3UploadFailedError); report it.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError | BotoCoreError):
            with _s3_errors(what):
                raise cause from None
        raise StoreError(f"{what}: {exc}") from exc


class S3Store:
    """Artifacts as objects under one bucket and prefix."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bucket, self.prefix, endpoint_url, region = parse_url(url)
        with _s3_errors(f"store {url}"):
            self._client = boto3.client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=_CLIENT_CONFIG
            )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{check_key(key)}" if self.prefix else check_key(key)

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put(self, local_path: Path | str, key: str, progress: Progress | None = None) -> str:
        final = self._key(key)
        temp_name = f"{TEMP_DIR}/{uuid.uuid4().hex}-{Path(final).name}"
        temp = f"{self.prefix}/{temp_name}" if self.prefix else temp_name
        uri = f"s3://{self.bucket}/{final}"
        with _s3_errors(f"upload to {uri}"):
            try:
                # Our own file handle: boto3 leaves its own open when a transfer fails.
                with Path(local_path).open("rb") as source:
                    self._client.upload_fileobj(
                        source,
                        self.bucket,
                        temp,
                        Callback=progress,
                        Config=_TRANSFER,
                    )
                self._client.copy({"Bucket": self.bucket, "Key": temp}, self.bucket, final)
            finally:
                self._delete_quietly(temp)
        return uri

    def _delete_quietly(self, key: str) -> None:
        # Cleanup after success or failure; if even this fails the object stays under .tmp/,
        # where no reader looks.
        with suppress(ClientError, BotoCoreError):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def get(self, uri: str, local_path: Path | str, progress: Progress | None = None) -> None:
        bucket, key = split_uri(uri)
        dest = Path(local_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
        try:
            with _s3_errors(f"artifact {uri}"):
                self._client.download_file(
                    bucket,
                    key,
                    str(temp),
                    Callback=progress,
                    Config=_TRANSFER,
                )
            temp.replace(dest)
        finally:
            temp.unlink(missing_ok=True)

    def local_path(self, uri: str) -> Path | None:
        return None

    def exists(self, uri: str) -> bool:
        bucket, key = split_uri(uri)
        try:
            self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in {
                "404",
                "NoSuchKey",
                "NotFound",
            }:
                return False
            with _s3_errors(f"artifact {uri}"):
                raise
        except BotoCoreError as exc:
            raise StoreError(f"artifact {uri}: S3 unreachable: {exc}") from exc
        return True

    def delete(self, uri: str) -> None:
        bucket, key = split_uri(uri)
        with _s3_errors(f"delete {uri}"):
            self._client.delete_object(Bucket=bucket, Key=key)

    def list_keys(self, prefix: str = "") -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        with _s3_errors(f"list {self.url}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + prefix
            )
            for page in pages:
                keys.extend(obj["Key"].removeprefix(base) for obj in page.get("Contents", []))
        return sorted(k for k in keys if not k.startswith(f"{TEMP_DIR}/"))
