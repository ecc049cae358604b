"""control.datagen: the columns, determinism to the byte, the planted model, candidates,
shift, shrink, downsampling, wire payloads, and that a model learns from the output."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

import rust_core
from control.datagen import (
    CANDIDATE_COLUMNS,
    CONTEXT_COLUMNS,
    SHIFTED_FEATURES,
    generate,
    planted_ctr,
    request_payloads,
    write_dataset,
)
from features.bid import SPECS, BidRequest
from features.readers import downsample_rate, read_logs
from features.tokenize import tokenize_table

EXPECTED_TYPES = {
    **dict.fromkeys(["request_id", "candidate_id"], pa.string()),
    **{
        name: {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}[field.type]
        for name, field in BidRequest.schema_info().raw.items()
    },
    "click": pa.int64(),
    "conversion": pa.int64(),
    "user_id": pa.string(),  # a context key for experiments, not a feature
}


@pytest.fixture(scope="module")
def big() -> pa.Table:
    return generate(60_000, seed=3, candidates=4)


def test_columns_match_the_bid_request_schema_and_the_shared_list(big: pa.Table):
    assert set(CONTEXT_COLUMNS) | set(CANDIDATE_COLUMNS) == set(BidRequest.schema_info().raw)
    assert len(CONTEXT_COLUMNS) == 20
    assert len(CANDIDATE_COLUMNS) == 8
    assert {f.name: f.type for f in big.schema} == EXPECTED_TYPES
    assert all(big[name].null_count == 0 for name in big.column_names)


def test_rates_are_those_of_real_traffic(big: pa.Table):
    clicks = big["click"].to_numpy()
    conversions = big["conversion"].to_numpy()

    assert 0.02 <= clicks.mean() <= 0.05
    assert 0.05 <= conversions[clicks == 1].mean() <= 0.10
    assert not (conversions & (1 - clicks)).any()  # a conversion needs a click


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path):
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    write_dataset(a, 5000, seed=9, candidates=3, downsample_negatives=0.5)
    write_dataset(b, 5000, seed=9, candidates=3, downsample_negatives=0.5)
    write_dataset(c, 5000, seed=10, candidates=3, downsample_negatives=0.5)

    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_a_day_is_the_same_bytes_in_a_shorter_and_a_longer_run(tmp_path: Path):
    write_dataset(tmp_path / "two", 1000, seed=4, days=2)
    write_dataset(tmp_path / "three", 1000, seed=4, days=3, shift_from_day=2)

    for day in ("dt=2026-11-01", "dt=2026-11-02"):
        two = (tmp_path / "two" / day / "part-0.parquet").read_bytes()
        assert two == (tmp_path / "three" / day / "part-0.parquet").read_bytes()


def test_planted_model_explains_the_clicks(big: pa.Table):
    p = planted_ctr(big)
    clicks = big["click"].to_numpy()

    assert abs(p.mean() - clicks.mean()) < 0.004
    assert roc_auc_score(clicks, p) > 0.75
    # Knocking out a field the planted model reads changes the probabilities.
    without_segment = planted_ctr(big.drop_columns(["user_segment"]))
    assert np.abs(without_segment - p).max() > 0.01


def test_candidates_share_their_request_context(big: pa.Table):
    requests = big["request_id"].to_numpy(zero_copy_only=False)
    first = np.flatnonzero(np.r_[True, requests[1:] != requests[:-1]])

    assert len(first) == 15_000
    assert len(set(requests)) == 15_000  # each request id in one run of 4 rows
    assert len(set(big["candidate_id"].to_pylist())) == 60_000
    for name in CONTEXT_COLUMNS:
        col = big[name].to_numpy(zero_copy_only=False)
        assert (col == np.repeat(col[first], 4)).all(), name
    assert len(set(big["campaign_id"].to_pylist()[:4000])) > 200  # candidates vary


def test_timestamps_follow_a_diurnal_curve_within_the_day(big: pa.Table):
    ts = big["ts"].to_numpy()
    start = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp())
    hours = Counter(((ts - start) // 3600).tolist())

    assert ts.min() >= start
    assert ts.max() < start + 86400
    assert (np.diff(ts) >= 0).all()
    assert hours[20] > 2 * hours[8]


def test_popularity_is_zipf_like(big: pa.Table):
    apps = Counter(a for a in big["app_id"].to_pylist() if a)
    counts = sorted(apps.values(), reverse=True)

    assert counts[0] > 20 * counts[len(counts) // 2]
    assert len(apps) > 1000


def _distribution_distance(a: pa.ChunkedArray, b: pa.ChunkedArray) -> float:
    """Total variation distance between two columns' value distributions (floats binned)."""
    if pa.types.is_floating(a.type):
        edges = np.quantile(a.to_numpy(), np.linspace(0, 1, 21)[1:-1])
        a = pa.chunked_array([np.searchsorted(edges, a.to_numpy())])
        b = pa.chunked_array([np.searchsorted(edges, b.to_numpy())])
    ca, cb = Counter(a.to_pylist()), Counter(b.to_pylist())
    na, nb = len(a), len(b)
    return 0.5 * sum(abs(ca[k] / na - cb[k] / nb) for k in set(ca) | set(cb))


def test_shift_moves_only_the_documented_features(tmp_path: Path):
    table = generate(40_000, seed=8, days=3, shift_from_day=2)
    start = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp())
    day = pc.divide(pc.subtract(table["ts"], start), 86400)
    before, same, after = (table.filter(pc.equal(day, d)) for d in (0, 1, 2))

    for name in [*CONTEXT_COLUMNS, *CANDIDATE_COLUMNS]:
        if name == "ts":
            continue
        noise = _distribution_distance(before[name], same[name])
        shift = _distribution_distance(same[name], after[name])
        if name in SHIFTED_FEATURES:
            assert shift > max(0.08, 3 * noise), (name, noise, shift)
        else:
            assert shift < 1.5 * noise + 0.01, (name, noise, shift)
    hours = [pc.divide(t["ts"], 3600).to_numpy() % 24 for t in (same, after)]
    assert abs(np.mean(hours[0]) - np.mean(hours[1])) < 0.3


def test_shrink_multiplies_the_rows_from_a_day_on(tmp_path: Path):
    summary = write_dataset(
        tmp_path / "logs", 1000, seed=1, days=4, shrink_from_day=2, shrink_factor=0.3
    )

    rows = [pq.ParquetFile(f).metadata.num_rows for f in summary.files]
    assert rows == [1000, 1000, 300, 300]
    assert summary.rows == 2600


def test_downsampling_keeps_every_positive_and_weights_negatives(tmp_path: Path):
    full = generate(20_000, seed=6, candidates=2)
    path = tmp_path / "ds.parquet"
    write_dataset(path, 20_000, seed=6, candidates=2, downsample_negatives=0.1)

    kept = read_logs(path, required_labels=["click"])

    assert downsample_rate(kept) == 0.1
    assert pq.read_schema(path).metadata[b"bidscore.downsample_rate"] == b"0.1"
    clicked = full.filter(pc.equal(full["click"], 1))
    kept_ids = set(kept["candidate_id"].to_pylist())
    assert set(clicked["candidate_id"].to_pylist()) <= kept_ids
    assert kept_ids <= set(full["candidate_id"].to_pylist())
    click = kept["click"].to_numpy()
    weight = kept["weight"].to_numpy()
    assert (weight[click == 1] == 1.0).all()
    assert np.allclose(weight[click == 0], 10.0)
    negatives = (full["click"].to_numpy() == 0).sum()
    assert abs((click == 0).sum() / negatives - 0.1) < 0.015
    # Weighted, the kept rows estimate the full CTR.
    assert abs(click @ weight / weight.sum() - full["click"].to_numpy().mean()) < 0.006


def test_request_payloads_are_wire_strings_of_generated_requests():
    payloads = request_payloads(20, seed=5, candidates=7)
    again = request_payloads(20, seed=5, candidates=7)
    table = generate(140, seed=5, candidates=7)

    assert payloads == again
    assert len(payloads) == 20
    first = payloads[0]
    assert set(first) == {"request_id", "context", "candidates"}
    # The schema's context features, then the simulated user's id (a key, not a feature).
    assert list(first["context"]) == [*CONTEXT_COLUMNS, "user_id"]
    assert first["context"]["user_id"] == table["user_id"][0].as_py()
    assert len(first["candidates"]) == 7
    values = [first["request_id"], *first["context"].values()]
    for cand in first["candidates"]:
        values += [cand["id"], *cand["features"].values()]
    assert all(isinstance(v, str) for v in values)
    assert first["context"]["ts"] == str(table["ts"][0].as_py())
    assert float(first["candidates"][3]["features"]["bid_price"]) == table["bid_price"][3].as_py()
    assert first["candidates"][3]["features"]["campaign_id"] == table["campaign_id"][3].as_py()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": 0}, "rows must be at least 1"),
        ({"seed": -1}, "seed must be in"),
        ({"candidates": 0}, "candidates must be at least 1"),
        ({"downsample_negatives": 0.0}, r"downsample rate must be in \(0, 1\]"),
        ({"shrink_factor": 1.5}, r"shrink factor must be in \(0, 1\]"),
        ({"start": "01/11/2026"}, "start must be a date YYYY-MM-DD"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object], message: str):
    args: dict[str, object] = {"rows": 10, "seed": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(**args)  # type: ignore[arg-type]


@pytest.mark.timeout(240)
def test_a_model_trained_on_generated_logs_beats_a_constant(tmp_path: Path):
    spec = SPECS["ctr"]
    write_dataset(tmp_path / "logs", 40_000, seed=21, days=3, candidates=2)
    train = read_logs(tmp_path / "logs", required_labels=["click"], end="2026-11-02")
    test = read_logs(tmp_path / "logs", required_labels=["click"], start="2026-11-03")

    model = rust_core.train_ffm(
        tokenize_table(train, spec, label="click"),
        k=4,
        epochs=3,
        seed=1,
        bits=spec.bits,
        fingerprint=spec.fingerprint,
    )
    predicted = model.predict(tokenize_table(test, spec, label="click"))
    clicks = test["click"].to_numpy()

    auc = roc_auc_score(clicks, predicted)
    assert auc > 0.65  # a constant predictor scores 0.5
    assert auc <= roc_auc_score(clicks, planted_ctr(test)) + 0.02  # the planted model's bound


def test_user_ids_are_stable_per_request_and_leave_the_other_columns_unchanged() -> None:
    table = generate(400, seed=9, candidates=4)
    assert table.column_names[-1] == "user_id"
    users = table["user_id"].to_pylist()
    requests = table["request_id"].to_pylist()
    for r in range(0, 400, 4):
        assert len({users[r + k] for k in range(4)}) == 1
        assert requests[r] == requests[r + 3]
    assert all(u.startswith("user-") for u in users)
    assert len(set(users)) > 50
    # Not a model feature: the schema does not define it.
    assert "user_id" not in BidRequest.schema_info().raw
