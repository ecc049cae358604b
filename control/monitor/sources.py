"""Where monitoring input comes from: local files, directories, globs or S3 prefixes.

`read_sources(["preds/", "s3://bucket/preds/2026-11-27?endpoint_url=.."], (".jsonl",))` yields
`(name, bytes)` for every matching file, in name order, so callers parse each one with the
file's name in their error messages. Directories are walked recursively (Hive-style `dt=...`
partitions work) and files still being written (`*.part`) are skipped.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bidscore.errors import BidscoreError


class MonitorInputError(BidscoreError):
    """Monitoring input that is missing or malformed; the message names the file."""


def read_sources(
    locations: Sequence[str], suffixes: tuple[str, ...]
) -> Iterator[tuple[str, bytes]]:
    """Every file under `locations` whose name ends with one of `suffixes`."""
    if not locations:
        raise MonitorInputError("no input files given")
    for location in locations:
        if location.startswith("s3://"):
            yield from _read_s3(location, suffixes)
        else:
            for path in _local_files(location, suffixes):
                try:
                    yield str(path), path.read_bytes()
                except OSError as exc:
                    raise MonitorInputError(f"cannot read {path}: {exc.strerror}") from exc


def _local_files(location: str, suffixes: tuple[str, ...]) -> list[Path]:
    path = Path(location.removeprefix("file://"))
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes)]
    else:
        found = [Path(p) for p in glob.glob(str(path)) if p.endswith(suffixes)]
        if not found:
            raise MonitorInputError(f"{location}: no such file or directory")
    return sorted(found)


def _read_s3(url: str, suffixes: tuple[str, ...]) -> Iterator[tuple[str, bytes]]:
    import boto3  # noqa: PLC0415 - only S3 inputs pay for importing boto3
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    bucket, prefix = parts.netloc, parts.path.lstrip("/")
    client: Any = boto3.client(
        "s3", endpoint_url=query.get("endpoint_url"), region_name=query.get("region")
    )
    try:
        keys = [
            obj["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for obj in page.get("Contents", [])
            if obj["Key"].endswith(suffixes)
        ]
        for key in sorted(keys):
            yield f"s3://{bucket}/{key}", client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise MonitorInputError(f"cannot read s3://{bucket}/{prefix}: {exc}") from exc
