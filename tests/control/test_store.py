"""Artifact stores against a real directory and S3 on the moto server: uploads become visible
only when complete, also when the uploading process is killed mid-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bidscore.store import ArtifactStore, StoreError, open_store


@pytest.fixture
def store(backends: tuple[str, str]) -> ArtifactStore:
    return open_store(backends[1])


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return path


def test_put_get_roundtrip(store: ArtifactStore, payload: Path, tmp_path: Path) -> None:
    uri = store.put(payload, "ctr/v-abc.model")
    assert uri == store.uri_for("ctr/v-abc.model")
    assert store.exists(uri)
    assert store.list_keys() == ["ctr/v-abc.model"]
    assert store.list_keys("cvr/") == []
    out = tmp_path / "down" / "model.bin"
    store.get(uri, out)
    assert out.read_bytes() == payload.read_bytes()
    store.delete(uri)
    assert not store.exists(uri)
    assert store.list_keys() == []


def test_progress_reports_every_byte(store: ArtifactStore, payload: Path, tmp_path: Path) -> None:
    sent: list[int] = []
    uri = store.put(payload, "ctr/p.model", progress=sent.append)
    received: list[int] = []
    store.get(uri, tmp_path / "x", progress=received.append)
    assert sum(sent) == sum(received) == payload.stat().st_size


def test_failed_upload_leaves_nothing_visible(store: ArtifactStore, payload: Path) -> None:
    moved = 0

    def fail_midway(n: int) -> None:
        nonlocal moved
        moved += n
        if moved > 1024 * 1024:
            raise RuntimeError("simulated failure")

    with pytest.raises(RuntimeError, match="simulated"):
        store.put(payload, "ctr/broken.model", progress=fail_midway)
    assert not store.exists(store.uri_for("ctr/broken.model"))
    assert store.list_keys() == []


def test_killed_upload_leaves_nothing_visible(
    backends: tuple[str, str], store: ArtifactStore, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    script = textwrap.dedent(
        f"""
        import os, signal
        from bidscore.store import open_store
        moved = 0
        def die(n):
            global moved
            moved += n
            if moved > 4 * 1024 * 1024:
                os.kill(os.getpid(), signal.SIGKILL)
        open_store({backends[1]!r}).put({str(big)!r}, "ctr/killed.model", progress=die)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert not store.exists(store.uri_for("ctr/killed.model"))
    assert store.list_keys() == []


def test_missing_artifact_is_a_one_line_error(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not found"):
        store.get(store.uri_for("ctr/none.model"), tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("key", ["", "../escape", "/abs", "a//b", "ctr/.hidden", "a b"])
def test_unsafe_keys_are_refused(store: ArtifactStore, payload: Path, key: str) -> None:
    with pytest.raises(StoreError, match="invalid artifact key"):
        store.put(payload, key)


@pytest.mark.parametrize(
    ("url", "message"),
    [("ftp://x", "unsupported store URL"), ("s3:///prefix", "names no bucket")],
)
def test_bad_store_urls(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(url)


@pytest.mark.aws
def test_s3_missing_bucket(moto_server: str, payload: Path) -> None:
    store = open_store(f"s3://no-such-bucket/x?endpoint_url={moto_server}&region=us-east-1")
    with pytest.raises(StoreError, match="bucket does not exist"):
        store.put(payload, "ctr/a.model")
