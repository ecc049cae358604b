"""Test data of the experiment suites: prediction logs of a simulated experiment, written in
the record format of `pyserver.predlog` with the experiment fields, arms assigned by
`bidscore.experiments.assign` on a `user_id` (control.datagen.experiment_logs), and registries
holding real, verifiable model versions."""

from __future__ import annotations

from pathlib import Path

from bidscore.experiments import Experiment, Guardrails
from bidscore.registry import Registry
from bidscore.store import ArtifactStore
from control.datagen.experiment_logs import Scorer, Written, settled_after, write_experiment_logs
from control.training import TrainedModel, publish

__all__ = ["Scorer", "Written", "experiment", "publish_versions", "settled_after", "simulate"]


def experiment(mode: str = "ab", share: float = 0.3, **changes: object) -> Experiment:
    base = Experiment(
        name=f"ctr-{mode}",
        model="ctr",
        mode=mode,  # type: ignore[arg-type]
        control="1",
        treatment="2",
        share=share,
        key="user_id",
        salt="test-salt",
        guardrails=Guardrails() if mode == "canary" else None,
    )
    return base.replace(**changes)


def simulate(
    out: Path,
    exp: Experiment,
    *,
    control: Scorer,
    treatment: Scorer,
    rows: int = 40_000,
    seed: int = 1,
    drop_treatment: float = 0.0,
) -> Written:
    return write_experiment_logs(
        out,
        exp,
        control=control,
        treatment=treatment,
        rows=rows,
        seed=seed,
        drop_treatment=drop_treatment,
    )


def publish_versions(
    trained: TrainedModel, registry: Registry, store: ArtifactStore, n: int
) -> None:
    """`n` real versions of ctr (the same trained model each time) and production on v1."""
    for _ in range(n):
        publish(trained, registry, store)
    registry.set_alias(
        "ctr", "production", "1", expected_generation=0, actor="test", reason="", kind="promote"
    )
