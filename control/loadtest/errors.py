"""The load test's one error type: a one-line message for a person."""

from __future__ import annotations

from bidscore.errors import BidscoreError


class LoadTestError(BidscoreError):
    """ghz missing or failing, a target that does not answer, bad load-test settings."""
