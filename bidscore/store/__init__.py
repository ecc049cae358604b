"""Artifact stores: where model files and manifests live.

`open_store(url)` chooses the backend by URL:
- `file:///path` — a directory (the embedded default);
- `s3://bucket/prefix?endpoint_url=..&region=..` — S3 (or an S3-compatible endpoint).

Either way an upload becomes visible only when complete.
"""

from __future__ import annotations

from bidscore.errors import StoreError
from bidscore.store.base import ArtifactStore, Progress

__all__ = ["ArtifactStore", "Progress", "StoreError", "open_store"]


def open_store(url: str) -> ArtifactStore:
    """The store at `url`; StoreError with one line if the URL is not understood."""
    if url.startswith("file://"):
        from bidscore.store.file import FileStore  # noqa: PLC0415 -- keep boto3 off this path

        return FileStore(url)
    if url.startswith("s3://"):
        try:
            from bidscore.store.s3 import S3Store  # noqa: PLC0415 -- boto3 is slow to import
        except ImportError as exc:  # boto3 comes with the [aws] extra
            raise StoreError(
                f"an s3:// store needs boto3 ({exc}): pip install 'bidscore[aws]'"
            ) from None
        return S3Store(url)
    raise StoreError(f"unsupported store URL {url!r}: use file:///path or s3://bucket/prefix")
