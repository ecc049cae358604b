"""Durations and instants as people type them on the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from control.monitor.sources import MonitorInputError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")


def parse_duration(text: str) -> float:
    """`"90s"`, `"15m"`, `"1h"`, `"7d"`, `"2w"` or plain seconds -> seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise MonitorInputError(f"not a duration: {text!r} (use e.g. 30m, 1h, 7d or seconds)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_instant(text: str) -> float:
    """Unix seconds, or an ISO 8601 date/time (UTC unless it carries an offset)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MonitorInputError(f"not a time: {text!r} (use unix seconds or ISO 8601)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
