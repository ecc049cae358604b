"""The load test's one error type: a one-line message for a person."""

from __future__ import annotations

from control.errors import ControlError


class LoadTestError(ControlError):
    """ghz missing or failing, a target that does not answer, bad load-test settings."""
