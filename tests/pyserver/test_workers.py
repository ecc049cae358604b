"""Several worker processes on one port: both serve, and they share the model's pages."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import grpc
import pytest

import rust_core
from control import datagen
from features.bid import SPECS
from features.tokenize import tokenize_table
from tests.pyserver.serve_harness import (
    Published,
    ServerFactory,
    ServerProcess,
    metric_value,
    publish_trained,
    request_bytes,
    score,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
MIN_MODEL_BYTES = 200 * 1024 * 1024


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _mapping_memory(pid: int, path_prefix: str) -> dict[str, int]:
    """kB of Rss / Shared / Private pages in the mappings of files under `path_prefix`."""
    totals = {"Rss": 0, "Shared": 0, "Private": 0}
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split(maxsplit=1)[0]
        if not first.endswith(":"):  # a mapping header: address range, perms, ..., path
            inside = line.split()[-1].startswith(path_prefix)
            continue
        if not inside:
            continue
        key = first[:-1]
        if key not in ("Rss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty"):
            continue
        value = int(line.split()[1])
        if key == "Rss":
            totals["Rss"] += value
        elif key in ("Shared_Clean", "Shared_Dirty"):
            totals["Shared"] += value
        elif key in ("Private_Clean", "Private_Dirty"):
            totals["Private"] += value
    return totals


def _private_kb(pid: int) -> int:
    """Private memory of the whole process, from smaps_rollup."""
    fields = dict(
        (line.split()[0].rstrip(":"), line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    )
    return int(fields["Private_Clean"]) + int(fields["Private_Dirty"])


@pytest.fixture
def big_ctr(tmp_path: Path) -> tuple[Path, rust_core.Model]:
    """The production ctr spec (FFM, 2^18 buckets, 25 fields) with k=8: about 210 MB."""
    spec = SPECS["ctr"]
    data = tokenize_table(datagen.generate(500, seed=5), spec, label="click")
    model = rust_core.train_ffm(data, k=8, epochs=1, bits=spec.bits, fingerprint=spec.fingerprint)
    path = tmp_path / "big-ctr.model"
    model.save(str(path))
    assert path.stat().st_size >= MIN_MODEL_BYTES
    return path, rust_core.load_model(str(path))


def test_two_workers_share_one_port_and_the_model_pages(
    tmp_path: Path, start_server: ServerFactory, big_ctr: tuple[Path, rust_core.Model]
) -> None:
    path, model = big_ctr
    pub = publish_trained(
        f"sqlite:///{tmp_path / 'registry.db'}", f"file://{tmp_path / 'store'}", {}
    )
    version = pub.publish("ctr", path, checksum=model.checksum, fingerprint=model.fingerprint)
    pub.promote("ctr", version)
    server = start_server(
        pub.registry_url, pub.store_url, "--workers", "2", "--specs", "features.bid:SPECS",
        models="ctr",
    )  # fmt: skip
    # start_server returned once both workers' metrics said ready (loaded and warmed).
    workers = _children(server.proc.pid)
    assert len(workers) == 2

    # Separate connections (no shared subchannel pool) are spread over both workers.
    request = request_bytes(datagen.request_payloads(1, seed=1, candidates=5)[0])
    for _ in range(24):
        with grpc.insecure_channel(
            server.target, options=[("grpc.use_local_subchannel_pool", 1)]
        ) as channel:
            assert len(score(channel, request).candidates) == 5
    # One scrape sums both workers' calls.
    text = server.metrics()
    assert metric_value(text, "grpc_server_handled_total", grpc_code="OK") == 24
    assert metric_value(text, "grpc_server_started_total") == 24

    size_kb = path.stat().st_size // 1024
    cache = str(tmp_path / "cache")
    usage = {pid: _mapping_memory(pid, cache) for pid in workers}
    for pid, mem in usage.items():
        # Each worker has the whole model resident (verification read every page)...
        assert mem["Rss"] >= 0.8 * size_kb, (pid, mem, size_kb)
        # ...but as pages shared with the other worker, not private copies.
        assert mem["Private"] < 0.2 * size_kb, (pid, mem, size_kb)
    second = max(workers)
    # The whole second process (forked, so the runtime pages are shared copy-on-write too)
    # adds less than a fifth of the model in private memory.
    assert _private_kb(second) < 0.2 * size_kb, _private_kb(second)
    print(
        f"model {size_kb} kB; per-worker model mapping {usage}; "
        f"second worker private total {_private_kb(second)} kB"
    )
    assert server.stop() == 0


@pytest.mark.timeout(180)
def test_a_worker_killed_by_a_signal_is_logged_with_its_name(
    published: Published, start_server: ServerFactory
) -> None:
    # Defect 10: a worker killed by SIGBUS (a truncated mapped model) left no log line naming
    # the signal.
    server = start_server(published.registry_url, published.store_url, "--workers", "2")
    victim = _children(server.proc.pid)[0]
    os.kill(victim, signal.SIGBUS)
    wait_until(lambda: "SIGBUS" in server.log(), timeout=30, message="the SIGBUS log line")
    assert f"(pid {victim}) was killed by SIGBUS (signal 7); restarting it" in server.log()

    # The restarted worker is ready once the server's one endpoint shows its pid ready
    # (stopping it earlier would catch it before its signal handlers exist).
    def restarted_ready() -> bool:
        pids = [pid for pid in _children(server.proc.pid) if pid != victim]
        return len(pids) == 2 and all(_ready(server, pid) for pid in pids)

    wait_until(restarted_ready, timeout=60, message="the restarted worker ready")
    assert victim not in _children(server.proc.pid)
    assert server.stop() == 0


def _ready(server: ServerProcess, pid: int) -> bool:
    try:
        return metric_value(server.metrics(), "bidscore_ready", pid=str(pid)) == 1
    except OSError:
        return False
