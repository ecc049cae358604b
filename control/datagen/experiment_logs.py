"""Prediction logs of a simulated experiment, for tests, demos and docs (no server involved).

Generated bid traffic (`control.datagen.generate`) is given a stable `user_id` per request
(drawn from a pool of simulated users), each request is assigned to an arm exactly as the
server does (`bidscore.experiments.assign(salt, user_id, share)`), scored by the arm's
simulated model, and written as prediction-log records in the format of `pyserver.predlog`
with the experiment fields (`control.monitor.predictions`): each record's model entry names
the experiment and the arm; in shadow mode the bidder-visible entry is control's and a
shadowed request also carries `"shadow": [{name, version, experiment, arm, scores}]`.

A simulated model scores a candidate from the planted click probability p
(`control.datagen.planted`): sigmoid(scale * logit(p) + shift + noise * N(0, 1)), so
`Scorer()` is the truth, `Scorer(noise=1.0)` a weaker model and `Scorer(shift=0.7)` a
miscalibrated one (about twice the true odds). Outcomes are the generated clicks, 60 s after
the request, as an outcome file `control monitor` reads.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bidscore.experiments import Experiment, assign
from control.datagen import generate
from control.datagen.planted import planted_ctr

CLICK_DELAY_SECONDS = 60.0


@dataclass(frozen=True)
class Scorer:
    """A simulated model: sigmoid(scale * logit(p) + shift + noise * N(0, 1))."""

    noise: float = 0.0
    scale: float = 1.0
    shift: float = 0.0

    def scores(self, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = np.clip(truth, 1e-9, 1 - 1e-9)
        z = self.scale * np.log(p / (1 - p)) + self.shift + self.noise * rng.standard_normal(p.size)
        out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return out

    @staticmethod
    def parse(text: str) -> Scorer:
        """`noise=1.0,shift=0.2` (empty: the planted truth)."""
        fields: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            if name not in ("noise", "scale", "shift"):
                raise ValueError(f"unknown scorer field {name!r}: use noise, scale, shift")
            fields[name] = float(value)
        return Scorer(**fields)


@dataclass(frozen=True)
class Written:
    log: Path
    outcomes: Path
    requests: dict[str, int]  # arm -> requests written
    last_ts: float


def write_experiment_logs(
    out: Path,
    experiment: Experiment,
    *,
    control: Scorer,
    treatment: Scorer,
    rows: int = 20_000,
    candidates: int = 2,
    users: int = 200_000,
    seed: int = 1,
    drop_treatment: float = 0.0,
) -> Written:
    """Write `out/predictions/*.jsonl` and `out/outcomes/clicks.parquet`.

    `drop_treatment` loses that share of the treatment's records (seeded), as a server whose
    treatment logging is broken would: the way to plant a sample-ratio mismatch.
    """
    table = generate(rows, seed, candidates=candidates)
    truth = planted_ctr(table)
    rng = np.random.default_rng(seed + 1)
    request_ids = table["request_id"].to_pylist()
    starts = [0] + [i for i in range(1, len(request_ids)) if request_ids[i] != request_ids[i - 1]]
    user_of = rng.integers(0, users, size=len(starts))
    arms = [assign(experiment.salt, f"user-{u}", experiment.share) for u in user_of]
    # Scores travel as float32 in the response (the proto's `float`), as the log records them.
    by_arm = {
        "control": control.scores(truth, rng).astype(np.float32).astype(np.float64),
        "treatment": treatment.scores(truth, rng).astype(np.float32).astype(np.float64),
    }
    keep = rng.random(len(starts)) >= drop_treatment
    ts = table["ts"].to_numpy()
    candidate_ids = table["candidate_id"].to_pylist()
    log_dir = out / "predictions"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "predictions-19700101T000000-sim-1-000001.jsonl"
    written = {"control": 0, "treatment": 0}
    with log.open("w", encoding="utf-8") as f:
        for k, start in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else len(request_ids)
            arm = arms[k]
            if arm == "treatment" and not keep[k]:
                continue
            record = _record(experiment, arm, by_arm, start, end, ts, request_ids, candidate_ids)
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
            written[arm] += 1
    return Written(
        log, write_outcomes(out / "outcomes" / "clicks.parquet", table), written, float(ts.max())
    )


def _record(  # noqa: PLR0917 -- one record's pieces
    experiment: Experiment,
    arm: str,
    by_arm: dict[str, np.ndarray],
    start: int,
    end: int,
    ts: np.ndarray,
    request_ids: list[str],
    candidate_ids: list[str],
) -> dict[str, Any]:
    """One record as `pyserver.predlog` writes it, with the experiment's fields."""
    shadow = experiment.mode == "shadow"
    served = "control" if shadow else arm
    entry = {
        "name": experiment.model,
        "version": experiment.version_of(served),  # type: ignore[arg-type]
        "experiment": experiment.name,
        "arm": served,
    }
    record: dict[str, Any] = {
        "ts": float(ts[start]),
        "request_id": request_ids[start],
        "models": [entry],
        "candidates": [
            {"id": candidate_ids[i], "scores": [float(by_arm[served][i])]}
            for i in range(start, end)
        ],
    }
    if shadow and arm == "treatment":
        record["shadow"] = [
            {
                "name": experiment.model,
                "version": experiment.treatment,
                "experiment": experiment.name,
                "arm": "treatment",
                "scores": [float(by_arm["treatment"][i]) for i in range(start, end)],
            }
        ]
    return record


def write_outcomes(path: Path, table: pa.Table) -> Path:
    """Click events (with their conversions) CLICK_DELAY_SECONDS after the request: the
    generated labels of `table` (`control.datagen.generate`: drawn from the planted
    probabilities), keyed by (request_id, candidate_id), at its `ts` + the delay."""
    clicked = table.filter(pc.equal(table["click"], 1))
    events = pa.table(
        {
            "request_id": clicked["request_id"],
            "candidate_id": clicked["candidate_id"],
            "click": clicked["click"],
            "conversion": clicked["conversion"],
            "ts": pa.array(clicked["ts"].to_numpy().astype(np.float64) + CLICK_DELAY_SECONDS),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(events, path)
    return path


def settled_after(written: Written, window_seconds: float = 86_400.0) -> float:
    """An `--as-of` at which every prediction of the log is settled."""
    return math.ceil(written.last_ts + window_seconds + 1)
