"""Experiments: an A/B split, a canary or a shadow of one model, as the registry records it.

An experiment names two versions of one model — `control` and `treatment` — and assigns each
request to one of them by a context key the bidder sends (`key`, e.g. `user_id`). The
assignment is a pure function of (salt, key value), so every worker, server and restart puts
the same key in the same arm, and a new salt reshuffles the population.

Modes:
- `ab`: `share` of requests are scored by the treatment, the rest by control;
- `canary`: the same split, plus guardrails (`Guardrails`) that stop it automatically;
- `shadow`: the bidder always gets control's scores; `share` of requests are also scored by
  the treatment off the response path, for the prediction log only.

The registry keeps at most one running experiment per model and moves its state by
compare-and-set on `generation`, like aliases (see bidscore/registry/base.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from bidscore.errors import InputError

__all__ = [
    "ARMS",
    "MODES",
    "Arm",
    "Experiment",
    "ExperimentEvent",
    "Guardrails",
    "Mode",
    "assign",
    "bucket",
    "check_experiment",
]

Mode = Literal["ab", "canary", "shadow"]
Arm = Literal["control", "treatment"]
MODES: tuple[Mode, ...] = ("ab", "canary", "shadow")
ARMS: tuple[Arm, ...] = ("control", "treatment")
STATES = ("running", "stopped")
EVENT_KINDS = ("start", "stop")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# Context keys travel in the request's `context` map; any non-empty printable name will do.
_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def bucket(salt: str, value: str) -> float:
    """A point in [0, 1) for the key value, uniform over values and fixed for (salt, value).

    The contract, for any implementation in another language: the first 8 bytes of
    BLAKE2b-64(utf8(salt) + 0x1f + utf8(value)), read big-endian, divided by 2**64.
    """
    digest = hashlib.blake2b(salt.encode() + b"\x1f" + value.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign(salt: str, value: str | None, share: float) -> Arm:
    """The arm of a request whose key has `value`: treatment iff bucket < share. A request
    without the key goes to control (the server counts those)."""
    if not value:
        return "control"
    return "treatment" if bucket(salt, value) < share else "control"


@dataclass(frozen=True)
class Guardrails:
    """Canary limits; `control experiment status`/`watch` stop the canary on a breach.

    - calibration: treatment's mean prediction / observed rate must stay inside
      [calibration_low, calibration_high] once `min_outcomes` positives are joined;
    - error rate: treatment's share of failed scorings may exceed control's by at most
      `max_error_rate_increase` (absolute);
    - PSI of treatment's score distribution against control's at most `max_psi`.
    """

    calibration_low: float = 0.8
    calibration_high: float = 1.25
    max_error_rate_increase: float = 0.001
    max_psi: float = 0.25
    min_outcomes: int = 50

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(body: dict[str, Any]) -> Guardrails:
        known = {f for f in Guardrails.__dataclass_fields__}
        return Guardrails(**{k: v for k, v in body.items() if k in known})


@dataclass(frozen=True)
class Experiment:
    """One experiment record. `generation` counts its state moves: 1 after start."""

    name: str
    model: str
    mode: Mode
    control: str
    treatment: str
    share: float
    key: str
    salt: str
    state: str = "running"
    generation: int = 0
    guardrails: Guardrails | None = None
    started_at: str = ""
    started_by: str = ""
    reason: str = ""
    stopped_at: str | None = None
    stopped_by: str | None = None
    stop_reason: str | None = None
    # After a stop: "treatment" or "control" if the stop promoted that arm, else None.
    promoted: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def version_of(self, arm: Arm) -> str:
        return self.treatment if arm == "treatment" else self.control

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["guardrails"] = None if self.guardrails is None else self.guardrails.to_json()
        return body

    @staticmethod
    def from_json(body: dict[str, Any]) -> Experiment:
        known = {f for f in Experiment.__dataclass_fields__}
        fields = {k: v for k, v in body.items() if k in known}
        rails = fields.get("guardrails")
        fields["guardrails"] = None if rails is None else Guardrails.from_json(rails)
        return Experiment(**fields)

    def replace(self, **changes: Any) -> Experiment:
        return replace(self, **changes)


@dataclass(frozen=True)
class ExperimentEvent:
    """One state move of an experiment, kept forever (`control experiment history`)."""

    name: str
    generation: int
    kind: str  # "start" | "stop"
    state: str
    actor: str
    reason: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_experiment(experiment: Experiment) -> Experiment:
    """`experiment` if its fields are valid on their own, else one-line InputError.

    The registry checks what needs its data (versions exist, no other running experiment).
    """
    e = experiment
    if not _NAME.fullmatch(e.name):
        raise InputError(
            f"invalid experiment name {e.name!r}: use letters, digits, '_', '.', '-' (max 128)"
        )
    if not _NAME.fullmatch(e.model):
        raise InputError(f"invalid model name {e.model!r}")
    if e.mode not in MODES:
        raise InputError(f"experiment mode must be one of {', '.join(MODES)}, not {e.mode!r}")
    high_ok = e.share <= 1.0 if e.mode == "shadow" else e.share < 1.0
    if not (e.share > 0.0 and high_ok):
        bound = "(0, 1]" if e.mode == "shadow" else "(0, 1)"
        raise InputError(f"--share must be in {bound}, not {e.share}")
    if not e.key:
        raise InputError("--key must name a request context key (e.g. user_id), not ''")
    if not _KEY.fullmatch(e.key):
        raise InputError(f"invalid context key {e.key!r}: use letters, digits, '_', '.', ':', '-'")
    for arm in ARMS:
        version = e.version_of(arm)
        if not version.isdigit() or int(version) < 1:
            raise InputError(f"{arm} version must be a version number, not {version!r}")
    if e.control == e.treatment:
        raise InputError(
            f"treatment and control are both version {e.control}: an experiment needs two versions"
        )
    if e.state not in STATES:
        raise InputError(f"experiment state must be one of {STATES}, not {e.state!r}")
    if e.mode == "canary" and e.guardrails is None:
        raise InputError("a canary needs guardrails")
    return experiment
