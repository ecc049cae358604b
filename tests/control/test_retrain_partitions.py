"""Window and holdout selection from daily partitions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from control.retrain.partitions import (
    Partition,
    SelectionError,
    parse_day,
    parse_days,
    select,
    to_partitions,
)

START = date(2026, 11, 1)


def fortnight(rows: int = 100, empty: tuple[int, ...] = (), drop: tuple[int, ...] = ()) -> list:
    return [
        Partition(
            START + timedelta(days=i),
            f"/data/dt={START + timedelta(days=i)}",
            0 if i in empty else rows,
        )
        for i in range(14)
        if i not in drop
    ]


def test_run_for_day_8_trains_on_days_1_to_7_and_holds_out_day_8():
    sel = select(fortnight(), window_days=7, holdout_days=1, day=date(2026, 11, 8))
    assert sel.train_days == (date(2026, 11, 1), date(2026, 11, 7))
    assert sel.holdout_days == (date(2026, 11, 8), date(2026, 11, 8))
    assert sel.history == ()
    assert len(sel.train) == 7


def test_default_day_is_the_newest_partition_and_older_days_are_history():
    sel = select(fortnight(), window_days=7, holdout_days=2)
    assert sel.holdout_days == (date(2026, 11, 13), date(2026, 11, 14))
    assert sel.train_days == (date(2026, 11, 6), date(2026, 11, 12))
    assert [p.day.day for p in sel.history] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(("kind", "days"), [("empty", (3,)), ("drop", (3,))])
def test_missing_or_empty_day_in_window_is_refused_unless_gaps_allowed(kind, days):
    parts = fortnight(**{kind: days})
    with pytest.raises(SelectionError, match=r"2026-11-04.*--allow-gaps"):
        select(parts, window_days=7, holdout_days=1, day=date(2026, 11, 8))
    sel = select(parts, window_days=7, holdout_days=1, day=date(2026, 11, 8), allow_gaps=True)
    assert sel.gaps == (date(2026, 11, 4),)
    assert len(sel.train) == 6


def test_day_before_any_data_is_refused():
    with pytest.raises(SelectionError, match="no partition for 2026-12-01"):
        select(fortnight(), window_days=7, holdout_days=1, day=date(2026, 12, 1))
    with pytest.raises(SelectionError, match="no dt=YYYY-MM-DD partitions"):
        select([], window_days=7, holdout_days=1)


def test_window_reaching_before_the_first_partition_is_a_gap():
    with pytest.raises(SelectionError, match="2026-10-31"):
        select(fortnight(), window_days=7, holdout_days=1, day=date(2026, 11, 7))


def test_parse_days_and_day():
    assert parse_days("7d", "--window") == 7
    assert parse_days("3", "--holdout") == 3
    for bad in ("0d", "week", "-1d", ""):
        with pytest.raises(SelectionError, match="--window must be a number of days"):
            parse_days(bad, "--window")
    assert parse_day("2026-11-08") == date(2026, 11, 8)
    with pytest.raises(SelectionError, match="--date must be YYYY-MM-DD"):
        parse_day("08/11/2026")


def test_to_partitions_accepts_strings_and_dates_and_sorts():
    parts = to_partitions([("2026-11-02", "/b", 5), (date(2026, 11, 1), "/a", 3)])
    assert [(p.day.day, p.path, p.rows) for p in parts] == [(1, "/a", 3), (2, "/b", 5)]


def test_describe_lists_roles_and_rows():
    sel = select(fortnight(), window_days=2, holdout_days=1, day=date(2026, 11, 3))
    described = sel.describe()
    assert described["train"] == {"start": "2026-11-01", "end": "2026-11-02"}
    assert [(p["day"], p["role"]) for p in described["partitions"]] == [
        ("2026-11-01", "train"),
        ("2026-11-02", "train"),
        ("2026-11-03", "holdout"),
    ]
