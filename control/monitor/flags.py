"""A finding of any monitor (offline, online, drift), in one shape for tables, JSON, the report
and the promotion gate."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["flag", "alarm"]


@dataclass(frozen=True)
class Flag:
    """Something a person should look at (`flag`) or that blocks a promotion (`alarm`)."""

    check: str  # which rule fired: "offline.auc", "online.calibration", "drift.psi", ...
    severity: Severity
    model: str
    version: str  # the version the finding is about (the newer one of a comparison)
    subject: str  # what inside it: a feature, a metric, a time bucket
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def alarms(flags: list[Flag]) -> list[Flag]:
    return [f for f in flags if f.severity == "alarm"]
