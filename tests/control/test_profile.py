"""The data profile: exact values on a small table, invariants on arbitrary ones."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from control import profile as profile_mod
from control.profile import histogram_counts, profile_column, profile_table, spec_features
from features.bid import SPECS


def test_string_column_profile() -> None:
    column = pa.array(["a", "b", "a", None, "c", "a", None, "b"])
    p = profile_column(column, "str")
    assert p == {
        "type": "str",
        "rows": 8,
        "missing": 2,
        "missing_rate": 0.25,
        "distinct": 3,
        "distinct_approximate": False,
        "top": [
            {"value": "a", "count": 3, "frequency": 3 / 8},
            {"value": "b", "count": 2, "frequency": 2 / 8},
            {"value": "c", "count": 1, "frequency": 1 / 8},
        ],
        "other_frequency": 0.0,
    }


def test_numeric_column_profile_has_a_decile_histogram() -> None:
    values = pa.array([float(i) for i in range(100)] + [None])
    p = profile_column(values, "float")
    assert (p["min"], p["max"], p["mean"]) == (0.0, 99.0, 49.5)
    assert p["missing"] == 1
    hist = p["histogram"]
    assert len(hist["edges"]) == 11
    assert hist["edges"][0] == 0.0
    assert hist["edges"][-1] == 99.0
    assert hist["counts"] == [10] * 10
    assert p["top"][0]["value"] == "0.0"


def test_constant_and_all_missing_columns() -> None:
    constant = profile_column(pa.array([3, 3, 3]), "int")
    assert constant["histogram"] == {"edges": [3.0, 3.0], "counts": [3]}
    assert constant["distinct"] == 1
    empty = profile_column(pa.nulls(4, pa.float64()), "float")
    assert empty["missing_rate"] == 1.0
    assert empty["top"] == []
    assert empty["histogram"] == {"edges": [], "counts": []}
    assert empty["mean"] is None


def test_top_values_are_capped_and_the_rest_is_other() -> None:
    column = pa.array([f"v{i % 30}" for i in range(300)])
    p = profile_column(column, "str")
    assert len(p["top"]) == profile_mod.TOP_K
    assert p["other_frequency"] == pytest.approx(10 / 30)


def test_large_columns_estimate_distinct_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile_mod, "DISTINCT_EXACT_LIMIT", 1000)
    column = pa.array(np.arange(20_000) % 5000)
    p = profile_column(column, "int")
    assert p["distinct_approximate"] is True
    assert 2500 <= p["distinct"] <= 10_000


def test_profile_of_the_ctr_spec_on_generated_logs() -> None:
    from control.datagen import generate  # noqa: PLC0415

    table = generate(2000, seed=3)
    features = spec_features(SPECS["ctr"])
    assert "app_id" in features
    assert "hour" not in features  # derived features are recomputed from raw ones
    profile = profile_table(table, features)
    assert set(profile) == set(features)
    assert all(p["rows"] == 2000 for p in profile.values())
    json.dumps(profile)  # the profile is plain JSON, stored in manifests


def test_absent_column_is_all_missing() -> None:
    profile = profile_table(pa.table({"a": [1, 2]}), {"a": "int", "b": "str"})
    assert profile["b"]["missing_rate"] == 1.0


@given(
    st.lists(st.one_of(st.none(), st.integers(-5, 40)), min_size=1, max_size=300),
)
def test_frequencies_add_up_and_histograms_count_every_value(values: list[int | None]) -> None:
    p = profile_column(pa.array(values, pa.int64()), "int")
    total = p["missing_rate"] + sum(t["frequency"] for t in p["top"]) + p["other_frequency"]
    assert total == pytest.approx(1.0)
    present = [v for v in values if v is not None]
    assert p["distinct"] == len(set(present))
    if present:
        assert sum(p["histogram"]["counts"]) == len(present)
        assert histogram_counts(present, p["histogram"]["edges"]) == p["histogram"]["counts"]
