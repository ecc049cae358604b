"""One warning line per interval for a failure that repeats on every batch.

A full disk fails every write of the prediction log's writer, several times a second; a line
per failure buried the server's own log (722 WARNING lines in 8 s). The first failure is logged
at once (an operator sees the problem start), then at most one line per interval summing up
the failures and records lost since, with the last error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class WarningLimiter:
    """Used by one thread (the prediction log's writer): no lock."""

    def __init__(
        self,
        log: logging.Logger,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._failures = 0
        self._records = 0
        self._last_error = ""

    def warn(self, what: str, records: int, error: BaseException) -> None:
        """Record one failure that lost `records` records; log if the interval has passed."""
        self._failures += 1
        self._records += records
        self._last_error = f"{what}: {type(error).__name__}: {error}"
        now = self._clock()
        if self._last is None or now - self._last >= self._interval:
            self._emit(now)

    def flush(self) -> None:
        """Log what was held back (at shutdown)."""
        if self._failures:
            self._emit(self._clock())

    def _emit(self, now: float) -> None:
        self._log.warning(
            "prediction log: %d failure(s), %d record(s) dropped%s; last: %s",
            self._failures,
            self._records,
            "" if self._last is None else f" in the last {now - self._last:.0f}s",
            self._last_error,
        )
        self._last = now
        self._failures = self._records = 0
