"""The local model cache: download once, publish without clobbering, verify, prune."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bidscore.store import open_store
from pyserver.artifacts import (
    RefusedArtifact,
    VerifiedFiles,
    cache_path,
    fetch,
    load_verified,
    prune,
)
from tests.pyserver.serve_harness import Published, TrainedModel


def test_fetch_downloads_once_and_never_replaces_a_published_file(
    published: Published, tmp_path: Path
) -> None:
    store = open_store(published.store_url)
    version = published.registry.get_version("ctr", "1")
    cache = tmp_path / "cache"
    first = fetch(store, version, cache)
    inode = first.stat().st_ino
    # A second worker fetching the same version maps the very same file (same pages).
    assert fetch(store, version, cache) == first
    assert first.stat().st_ino == inode
    assert first == cache_path(cache, version, version.manifest.checksum)
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temp files left


def test_load_verified_checks_the_manifest_and_the_spec(
    published: Published, trained: dict[str, list[TrainedModel]], tmp_path: Path
) -> None:
    store = open_store(published.store_url)
    version = published.registry.get_version("ctr", "1")
    path = fetch(store, version, tmp_path)
    fingerprint = trained["ctr"][0].model.fingerprint
    loaded = load_verified(version, path, fingerprint)
    assert (loaded.name, loaded.version, loaded.path) == ("ctr", "1", str(path))
    with pytest.raises(RefusedArtifact) as info:
        load_verified(version, path, "0" * 64)
    assert info.value.reason == "fingerprint"
    assert "ctr version 1" in str(info.value)


def test_a_corrupt_cached_file_is_refused_and_dropped(published: Published, tmp_path: Path) -> None:
    store = open_store(published.store_url)
    version = published.registry.get_version("cvr", "1")
    path = fetch(store, version, tmp_path)
    data = bytearray(path.read_bytes())
    data[-8] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(RefusedArtifact) as info:
        load_verified(version, path, "unused")
    assert info.value.reason == "format"
    assert not path.exists()  # the next attempt downloads afresh


def test_a_verified_file_is_not_verified_again_while_unchanged(
    published: Published, trained: dict[str, list[TrainedModel]], tmp_path: Path
) -> None:
    store = open_store(published.store_url)
    version = published.registry.get_version("ctr", "1")
    path = fetch(store, version, tmp_path)
    fingerprint = trained["ctr"][0].model.fingerprint
    files = VerifiedFiles()
    first = files.load(version, path, fingerprint)
    # The same mapped model comes back: no new mapping, no second pass over the payload.
    again = files.load(version, path, fingerprint)
    assert again.model is first.model
    assert (again.name, again.version, again.checksum) == ("ctr", "1", first.checksum)
    # The fingerprint is still checked on every load.
    with pytest.raises(RefusedArtifact) as info:
        files.load(version, path, "0" * 64)
    assert info.value.reason == "fingerprint"
    assert files.load(version, path, fingerprint).model is first.model


def test_a_verified_file_changed_on_disk_is_verified_again(
    published: Published, trained: dict[str, list[TrainedModel]], tmp_path: Path
) -> None:
    store = open_store(published.store_url)
    version = published.registry.get_version("cvr", "1")
    path = fetch(store, version, tmp_path)
    fingerprint = trained["cvr"][0].model.fingerprint
    files = VerifiedFiles()
    good = files.load(version, path, fingerprint)
    # Corrupt it in place: same inode and size, only its times change.
    inode = path.stat().st_ino
    data = bytearray(path.read_bytes())
    data[-8] ^= 0x01
    path.write_bytes(bytes(data))
    assert path.stat().st_ino == inode
    with pytest.raises(RefusedArtifact) as info:
        files.load(version, path, fingerprint)
    assert info.value.reason == "format"
    assert not path.exists()
    assert len(files) == 0
    # Fetched again, it is verified again: a new mapping.
    path = fetch(store, version, tmp_path)
    assert files.load(version, path, fingerprint).model is not good.model


def test_verified_files_forget_pruned_files(
    published: Published, trained: dict[str, list[TrainedModel]], tmp_path: Path
) -> None:
    store = open_store(published.store_url)
    files = VerifiedFiles()
    paths = {}
    for name in ("ctr", "cvr"):
        version = published.registry.get_version(name, "1")
        paths[name] = fetch(store, version, tmp_path)
        files.load(version, paths[name], trained[name][0].model.fingerprint)
    assert len(files) == 2
    paths["ctr"].unlink()  # pruned from the cache
    version = published.registry.get_version("cvr", "1")
    files.load(version, paths["cvr"], trained["cvr"][0].model.fingerprint)
    assert len(files) == 1


def test_prune_keeps_the_newest_and_the_served_file(tmp_path: Path) -> None:
    directory = tmp_path / "ctr"
    directory.mkdir()
    now = time.time()
    paths = []
    for i in range(6):
        path = directory / f"{i}-abc.model"
        path.write_bytes(b"x")
        os.utime(path, (now - 100 + i, now - 100 + i))
        paths.append(path)
    (directory / ".5-abc.model.123.part").write_bytes(b"partial download")
    removed = prune(tmp_path, "ctr", serving=paths[0], keep=3)
    assert sorted(removed) == sorted(paths[1:3])
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [".5-abc.model.123.part", "0-abc.model", "3-abc.model", "4-abc.model", "5-abc.model"]
    )
