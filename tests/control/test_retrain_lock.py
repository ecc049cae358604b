"""The per-model retraining lock and the run records, on a real SQLite registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from bidscore.registry import open_registry
from control.retrain.lock import AlreadyRunningError, LockLostError, RunLock, lock_name
from control.retrain.record import RunRecorder, StepFailedError, mark_abandoned
from tests.waiting import FakeClock, wait_until


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(tmp_path: Path, clock: FakeClock):
    return open_registry(f"sqlite:///{tmp_path / 'registry.db'}", clock=clock)


def test_second_holder_is_refused_until_release(registry):
    with RunLock(registry, "ctr", "a", ttl_seconds=30):
        with (
            pytest.raises(AlreadyRunningError, match="already running"),
            RunLock(registry, "ctr", "b", ttl_seconds=30),
        ):
            pass
        # another model's runs do not wait for this one
        with RunLock(registry, "cvr", "b", ttl_seconds=30):
            pass
    with RunLock(registry, "ctr", "b", ttl_seconds=30):
        pass


def test_heartbeat_keeps_a_live_run_locked_past_its_ttl(registry, clock):
    with RunLock(registry, "ctr", "a", ttl_seconds=30, heartbeat_seconds=0.01) as lock:
        for _ in range(3):  # 60 s in all: twice the TTL, renewed in between
            clock.advance(20)
            beats = lock.renewals
            wait_until(lambda beats=beats: lock.renewals > beats, message="a heartbeat")
        assert not registry.acquire_lock(lock_name("ctr"), "b", 30)


def test_dead_holders_lock_expires(registry, clock):
    # A run killed with SIGKILL leaves its lock behind without a heartbeat.
    assert registry.acquire_lock(lock_name("ctr"), "dead", 60)
    with pytest.raises(AlreadyRunningError):
        RunLock(registry, "ctr", "b", ttl_seconds=30).__enter__()
    clock.advance(59)
    with pytest.raises(AlreadyRunningError):
        RunLock(registry, "ctr", "b", ttl_seconds=30).__enter__()
    clock.advance(2)
    with RunLock(registry, "ctr", "b", ttl_seconds=30):
        pass


def test_check_raises_when_the_lock_was_taken_over(registry):
    lock = RunLock(registry, "ctr", "a", ttl_seconds=30)
    with lock:
        registry.release_lock(lock_name("ctr"), "a")
        assert registry.acquire_lock(lock_name("ctr"), "b", 30)
        with pytest.raises(LockLostError, match="lost the registry lock"):
            lock.check()
    # the lost lock is not released on exit: it belongs to "b" now
    assert not registry.acquire_lock(lock_name("ctr"), "c", 30)


def test_record_keeps_steps_timing_and_failures(registry):
    recorder = RunRecorder(registry, "ctr", {"data_root": "/d"}, persist=True)
    with recorder.step("select") as detail:
        detail["summary"] = "7 days"
    with pytest.raises(StepFailedError), recorder.step("validate"):
        raise StepFailedError("row_count 2026-11-08: 50%")
    recorder.skip("train", "validation failed")
    recorder.finish("stopped", {"action": "stopped", "reason": "validation"})
    stored = registry.get_run(recorder.run_id)
    assert [(s["name"], s["status"]) for s in stored["steps"]] == [
        ("select", "ok"),
        ("validate", "failed"),
        ("train", "skipped"),
    ]
    assert stored["steps"][1]["error"] == "row_count 2026-11-08: 50%"
    assert all(s["seconds"] is not None for s in stored["steps"])
    assert stored["status"] == "stopped"
    assert stored["finished_at"] is not None


def test_dry_run_records_nothing(registry):
    recorder = RunRecorder(registry, "ctr", {}, persist=False)
    with recorder.step("select"):
        pass
    recorder.finish("succeeded", {"action": "dry-run"})
    assert registry.list_runs("ctr") == []


def test_mark_abandoned_closes_only_other_running_records(registry):
    dead = RunRecorder(registry, "ctr", {}, persist=True)
    dead.save()
    done = RunRecorder(registry, "ctr", {}, persist=True)
    done.finish("noop", {"action": "noop"})
    current = RunRecorder(registry, "ctr", {}, persist=True)
    current.save()
    assert mark_abandoned(registry, "ctr", current.run_id) == [dead.run_id]
    assert registry.get_run(dead.run_id)["status"] == "abandoned"
    assert registry.get_run(done.run_id)["status"] == "noop"
    assert registry.get_run(current.run_id)["status"] == "running"
