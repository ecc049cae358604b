"""Durations and instants as typed on the command line."""

from __future__ import annotations

import pytest

from control.monitor.durations import parse_duration, parse_instant
from control.monitor.sources import MonitorInputError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("7d", 604_800.0),
        ("2w", 1_209_600.0),
        (" 1H ", 3600.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1y", "-1h", "1h30m"])
def test_bad_durations_name_the_input(text: str) -> None:
    with pytest.raises(MonitorInputError, match="not a duration"):
        parse_duration(text)


def test_instants() -> None:
    assert parse_instant("1795000000") == 1_795_000_000.0
    assert parse_instant("2026-11-01") == 1_793_491_200.0  # midnight UTC
    assert parse_instant("2026-11-01T01:00:00Z") == 1_793_494_800.0
    assert parse_instant("2026-11-01T03:00:00+02:00") == 1_793_494_800.0
    with pytest.raises(MonitorInputError, match="not a time: 'soon'"):
        parse_instant("soon")
