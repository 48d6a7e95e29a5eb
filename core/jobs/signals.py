"""Exceptions a job handler raises to steer what the queue does next."""

from __future__ import annotations

import math


class RetryLater(Exception):
    """Run the job again after ``after_seconds`` without consuming an attempt.

    Meant for back-pressure from the provider (HTTP 429 with ``retry_after``, an open circuit):
    the job did nothing wrong, so it must not burn its retry budget.
    """

    def __init__(self, after_seconds: float, reason: str = "retry later") -> None:
        if not math.isfinite(after_seconds) or after_seconds < 0:
            raise ValueError("after_seconds must be a finite, non-negative number")
        super().__init__(f"{reason} (after {after_seconds:g}s)")
        self.after_seconds = float(after_seconds)
        self.reason = reason


class PermanentFailure(Exception):
    """The job can never succeed (invalid recipient, rejected payload): dead-letter it now."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
