"""The prediction-log reader with experiments: `experiment`, `arm` and `shadow` columns from
both parsers, old logs unchanged, simulated records in pyserver.predlog's exact format, and
online monitoring that leaves shadow rows out."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest
from prometheus_client import CollectorRegistry

from bidscore.v1 import scorer_pb2
from control import datagen
from control.monitor.collect import online_from_log
from control.monitor.predictions import _parse_arrow, _parse_lines, read_predictions, served
from control.monitor.sources import MonitorInputError
from features import catalog
from pyserver.predlog import PredictionLog
from tests.control.experiment_data import Scorer, experiment, settled_after, simulate
from tests.control.monitor_data import write_prediction_log

KEY = ["request_id", "candidate_id", "shadow", "model"]


def _both(path: Path) -> tuple[object, object]:
    data = path.read_bytes()
    fast, _ = _parse_arrow(data)
    slow, _ = _parse_lines(str(path), data)
    return fast.sort_by([(k, "ascending") for k in KEY]), slow.sort_by(
        [(k, "ascending") for k in KEY]
    )


@pytest.mark.parametrize("mode", ["ab", "shadow"])
def test_both_parsers_read_the_experiment_fields(tmp_path: Path, mode: str) -> None:
    exp = experiment(mode, share=0.4)
    written = simulate(tmp_path, exp, control=Scorer(noise=1.0), treatment=Scorer(), rows=3_000)
    fast, slow = _both(written.log)
    assert fast.equals(slow)  # type: ignore[attr-defined]
    scores = fast
    assert set(scores["experiment"].to_pylist()) == {exp.name}  # type: ignore[index]
    shadow = scores.filter(scores["shadow"])  # type: ignore[attr-defined,index]
    if mode == "ab":
        assert shadow.num_rows == 0
        arms = set(zip(scores["arm"].to_pylist(), scores["version"].to_pylist(), strict=True))  # type: ignore[index]
        assert arms == {("control", "1"), ("treatment", "2")}
    else:
        # Shadow: bidder-visible rows are control's; shadowed requests add treatment rows.
        visible = served(scores)  # type: ignore[arg-type]
        assert set(visible["arm"].to_pylist()) == {"control"}
        assert set(visible["version"].to_pylist()) == {"1"}
        assert set(shadow["version"].to_pylist()) == {"2"}
        assert shadow.num_rows == sum(
            1
            for r in visible["request_id"].to_pylist()
            if r in set(shadow["request_id"].to_pylist())
        )


def test_old_logs_read_as_before(tmp_path: Path) -> None:
    traffic = datagen.generate(300, seed=8, candidates=2)
    write_prediction_log(tmp_path, traffic, datagen.planted_ctr(traffic))
    (path,) = tmp_path.glob("predictions-*.jsonl")
    fast, slow = _both(path)
    assert fast.equals(slow)  # type: ignore[attr-defined]
    assert fast["experiment"].null_count == fast.num_rows  # type: ignore[index,attr-defined]
    assert fast["arm"].null_count == fast.num_rows  # type: ignore[index,attr-defined]
    assert not pc.any(fast["shadow"]).as_py()  # type: ignore[index]


def test_simulated_records_are_predlog_records(tmp_path: Path) -> None:
    """The simulation writes what pyserver.predlog writes for the same response, plus only the
    experiment fields."""
    written = simulate(
        tmp_path / "sim",
        experiment("shadow", share=1.0),
        control=Scorer(),
        treatment=Scorer(),
        rows=20,
    )
    record = json.loads(written.log.read_text().splitlines()[0])
    log = PredictionLog(str(tmp_path / "real"), sample_rate=1.0, registry=CollectorRegistry())
    request = scorer_pb2.ScoreRequest(request_id=record["request_id"])
    response = scorer_pb2.ScoreResponse(
        request_id=record["request_id"],
        models=[
            scorer_pb2.ModelVersion(name=m["name"], version=m["version"]) for m in record["models"]
        ],
    )
    for c in record["candidates"]:
        request.candidates.add(id=c["id"])
        response.candidates.add(id=c["id"], scores=c["scores"])
    assert log.log_response(request, response, ts=record["ts"])
    assert log.close()
    (real_path,) = (tmp_path / "real").glob("*.jsonl")
    real = json.loads(real_path.read_text())
    stripped = {k: v for k, v in record.items() if k != "shadow"}
    stripped["models"] = [{"name": m["name"], "version": m["version"]} for m in record["models"]]
    assert stripped == real
    assert list(stripped) == list(real)
    assert record["models"][0] | {} == {
        "name": "ctr",
        "version": "1",
        "experiment": "ctr-shadow",
        "arm": "control",
    }
    assert [s["arm"] for s in record["shadow"]] == ["treatment"]


def test_a_shadow_entry_must_score_every_candidate(tmp_path: Path) -> None:
    record = {
        "ts": 1.0,
        "request_id": "r1",
        "models": [{"name": "ctr", "version": "1", "experiment": "e", "arm": "control"}],
        "candidates": [{"id": "a", "scores": [0.1]}, {"id": "b", "scores": [0.2]}],
        "shadow": [{"name": "ctr", "version": "2", "experiment": "e", "arm": "treatment",
                    "scores": [0.3]}],
    }  # fmt: skip
    path = tmp_path / "predictions-x.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(MonitorInputError, match=r"predictions-x.jsonl:1: .*shadow 'ctr' has 1"):
        read_predictions([str(path)])


def test_online_accuracy_leaves_shadow_rows_out(tmp_path: Path) -> None:
    written = simulate(
        tmp_path,
        experiment("shadow", share=0.5),
        control=Scorer(),
        treatment=Scorer(shift=1.0),
        rows=4_000,
    )
    log = read_predictions([str(written.log)])
    assert pc.any(log.scores["shadow"]).as_py()
    report = online_from_log(
        log,
        [str(written.outcomes)],
        {"ctr": catalog.load().target("ctr")},
        settled_after(written),
    )
    assert [(t.model, t.version) for t in report.totals] == [("ctr", "1")]
    assert report.totals[0].count == served(log.scores).num_rows
