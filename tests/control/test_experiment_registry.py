"""Experiment records in the registry, on both backends (a SQLite file and DynamoDB on the
moto server): start, stop by compare-and-set, at most one running per model, history."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bidscore.errors import InputError
from bidscore.experiments import Experiment, Guardrails
from bidscore.manifest import Manifest
from bidscore.registry import ConflictError, NotFoundError, Registry, open_registry


@pytest.fixture
def registry(backends: tuple[str, str]) -> Registry:
    reg = open_registry(backends[0])
    for model in ("ctr", "cvr"):
        for i in range(3):
            reg.register_version(model, Manifest(metrics={"auc": 0.7}), f"file:///a/{model}/{i}")
    return reg


def _experiment(name: str = "ctr-v2", model: str = "ctr", **changes: object) -> Experiment:
    base = Experiment(
        name=name,
        model=model,
        mode="ab",
        control="1",
        treatment="2",
        share=0.1,
        key="user_id",
        salt="s",
    )
    return base.replace(**changes)


def test_start_then_stop_records_every_move(registry: Registry) -> None:
    started = registry.start_experiment(_experiment(), actor="ana", reason="try v2")
    assert (started.state, started.generation, started.started_by) == ("running", 1, "ana")
    assert registry.get_experiment("ctr-v2") == started
    assert registry.running_experiments() == [started]

    stopped = registry.stop_experiment(
        "ctr-v2", expected_generation=1, actor="bo", reason="enough data", promoted="treatment"
    )
    assert (stopped.state, stopped.generation, stopped.promoted) == ("stopped", 2, "treatment")
    assert stopped.stop_reason == "enough data"
    assert registry.running_experiments() == []
    assert registry.list_experiments("ctr") == [stopped]
    history = registry.experiment_history("ctr-v2")
    assert [(e.generation, e.kind, e.state, e.actor, e.reason) for e in history] == [
        (1, "start", "running", "ana", "try v2"),
        (2, "stop", "stopped", "bo", "enough data"),
    ]


def test_one_running_experiment_per_model(registry: Registry) -> None:
    registry.start_experiment(_experiment(), actor="a", reason="")
    with pytest.raises(ConflictError, match="already has a running experiment 'ctr-v2'"):
        registry.start_experiment(_experiment("ctr-v3", treatment="3"), actor="a", reason="")
    # Another model is free; a stopped experiment frees its model.
    registry.start_experiment(_experiment("cvr-v2", model="cvr"), actor="a", reason="")
    registry.stop_experiment("ctr-v2", expected_generation=1, actor="a", reason="")
    registry.start_experiment(_experiment("ctr-v3", treatment="3"), actor="a", reason="")
    assert [e.name for e in registry.running_experiments()] == ["ctr-v3", "cvr-v2"]
    assert [e.name for e in registry.list_experiments()] == ["ctr-v2", "ctr-v3", "cvr-v2"]


def test_a_name_is_used_once(registry: Registry) -> None:
    registry.start_experiment(_experiment(), actor="a", reason="")
    registry.stop_experiment("ctr-v2", expected_generation=1, actor="a", reason="")
    with pytest.raises(ConflictError, match="experiment 'ctr-v2' exists"):
        registry.start_experiment(_experiment(), actor="a", reason="")


def test_stop_is_compare_and_set(registry: Registry) -> None:
    registry.start_experiment(_experiment(), actor="a", reason="")
    with pytest.raises(ConflictError, match="expected generation 5"):
        registry.stop_experiment("ctr-v2", expected_generation=5, actor="a", reason="")
    registry.stop_experiment("ctr-v2", expected_generation=1, actor="a", reason="")
    with pytest.raises(ConflictError):
        registry.stop_experiment("ctr-v2", expected_generation=2, actor="a", reason="")
    assert len(registry.experiment_history("ctr-v2")) == 2


def test_bad_input_writes_nothing(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="has no version '9'"):
        registry.start_experiment(_experiment(treatment="9"), actor="a", reason="")
    with pytest.raises(NotFoundError, match="has no version"):
        registry.start_experiment(_experiment(model="nope"), actor="a", reason="")
    with pytest.raises(InputError, match="share"):
        registry.start_experiment(_experiment(share=1.2), actor="a", reason="")
    with pytest.raises(NotFoundError, match="unknown experiment"):
        registry.get_experiment("ctr-v2")
    with pytest.raises(NotFoundError, match="unknown experiment"):
        registry.stop_experiment("ctr-v2", expected_generation=1, actor="a", reason="")
    assert registry.list_experiments() == []
    assert registry.experiment_history("ctr-v2") == []


def test_guardrails_survive_the_round_trip(registry: Registry) -> None:
    canary = _experiment(mode="canary", guardrails=Guardrails(calibration_high=1.1))
    registry.start_experiment(canary, actor="a", reason="")
    stored = registry.get_experiment("ctr-v2")
    assert stored.guardrails == Guardrails(calibration_high=1.1)


_START = textwrap.dedent(
    """
    import sys
    from bidscore.errors import ConflictError
    from bidscore.experiments import Experiment
    from bidscore.registry import open_registry

    registry = open_registry(sys.argv[1])
    experiment = Experiment(
        name=sys.argv[2], model="ctr", mode="ab", control="1", treatment=sys.argv[3],
        share=0.1, key="user_id", salt="s",
    )
    sys.stdin.readline()  # start together
    try:
        registry.start_experiment(experiment, actor=sys.argv[2], reason="race")
    except ConflictError as exc:
        print("lost:", exc)
    else:
        print("won")
    """
)


def test_concurrent_starts_from_two_processes_exactly_one_wins(
    registry: Registry, backends: tuple[str, str]
) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _START, backends[0], name, treatment],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, treatment in (("race-a", "2"), ("race-b", "3"))
    ]
    # Both have imported and opened the registry once they read stdin; release them at once.
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert sorted(o.split(":")[0] for o in outputs) == ["lost", "won"], outputs
    winner = ["race-a", "race-b"][[o for o in outputs].index("won")]
    assert [e.name for e in registry.running_experiments()] == [winner]
    assert [e.name for e in registry.list_experiments()] == [winner]
