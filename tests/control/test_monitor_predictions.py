"""Reading the prediction log back: the Arrow fast path and the line-by-line parser agree, and a
malformed record is named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from control import datagen
from control.monitor.predictions import _parse_arrow, _parse_lines, read_predictions
from control.monitor.sources import MonitorInputError
from tests.control.monitor_data import write_prediction_log


@pytest.mark.parametrize("with_features", [False, True])
def test_fast_and_line_by_line_parsing_agree(tmp_path: Path, with_features: bool) -> None:
    traffic = datagen.generate(600, seed=8, candidates=3)
    columns = (
        {
            "include_features": True,
            "context_columns": datagen.CONTEXT_COLUMNS,
            "candidate_columns": datagen.CANDIDATE_COLUMNS,
        }
        if with_features
        else {}
    )
    write_prediction_log(tmp_path, traffic, datagen.planted_ctr(traffic), **columns)
    (path,) = tmp_path.glob("predictions-*.jsonl")
    data = path.read_bytes()

    fast_scores, fast_features = _parse_arrow(data)
    slow_scores, slow_features = _parse_lines(str(path), data)
    assert fast_scores.equals(slow_scores)
    assert fast_scores.num_rows == traffic.num_rows
    assert fast_scores["candidate_id"].to_pylist() == traffic["candidate_id"].to_pylist()
    if with_features:
        assert fast_features is not None
        assert slow_features is not None
        assert fast_features.sort_by("candidate_id").equals(slow_features.sort_by("candidate_id"))
        assert fast_features["bid_price"].to_pylist()[:3] == [
            repr(v) for v in traffic["bid_price"].to_pylist()[:3]
        ]
    else:
        assert fast_features is None
        assert slow_features is None


def test_a_bad_record_is_named_by_file_and_line(tmp_path: Path) -> None:
    good = (
        '{"ts": 1.0, "request_id": "r1", "models": [{"name": "ctr", "version": "1"}],'
        ' "candidates": [{"id": "c1", "scores": [0.5]}]}'
    )
    bad = good.replace('"scores": [0.5]', '"scores": [0.5, 0.1]')
    (tmp_path / "predictions-1.jsonl").write_text(f"{good}\n{good}\n{bad}\n")
    with pytest.raises(
        MonitorInputError, match=r"predictions-1.jsonl:3: .*'c1' has 2 scores for 1 models"
    ):
        read_predictions([str(tmp_path)])
    (tmp_path / "predictions-1.jsonl").write_text(f"{good}\nnot json\n")
    with pytest.raises(MonitorInputError, match=r"predictions-1.jsonl:2: not a prediction log"):
        read_predictions([str(tmp_path)])
    # Ints where floats are expected, and blank lines, are fine.
    (tmp_path / "predictions-1.jsonl").write_text(f"\n{good.replace('0.5', '1')}\n\n{good}\n")
    assert read_predictions([str(tmp_path)]).scores["score"].to_pylist() == [1.0, 0.5]
