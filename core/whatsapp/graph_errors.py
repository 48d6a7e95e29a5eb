"""What to do when the Graph API refuses or fails a send: retry later, give up, or tell the
agent that only a template can reach the customer now.

Codes from Meta's Cloud API error reference. Unknown codes on a 4xx are not retried (the request
itself is wrong); anything on a 5xx, a 429 or a network failure is retried.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorAction(StrEnum):
    RETRY = "retry"
    NO_RETRY = "no_retry"
    NEEDS_TEMPLATE = "needs_template"


#: Outside the 24-hour window a free-form message is refused with these.
NEEDS_TEMPLATE_CODES = frozenset({131047})
#: Throttling and transient platform failures.
RETRY_CODES = frozenset(
    {
        1,  # API unknown
        2,  # API service temporarily unavailable
        4,  # application request limit reached
        17,  # user request limit reached
        341,  # application limit reached
        80007,  # WABA rate limit
        130429,  # Cloud API throughput reached
        131000,  # something went wrong
        131016,  # service unavailable
        131048,  # spam rate limit hit
        131056,  # (business, consumer) pair rate limit
        133004,  # server temporarily unavailable
    }
)


def classify_error(
    http_status: int | None, code: int | None = None, *, timed_out: bool = False
) -> ErrorAction:
    """``http_status`` None means no HTTP answer at all (connection refused, reset, timeout)."""
    if timed_out or http_status is None:
        return ErrorAction.RETRY
    if code is not None:
        if code in NEEDS_TEMPLATE_CODES:
            return ErrorAction.NEEDS_TEMPLATE
        if code in RETRY_CODES:
            return ErrorAction.RETRY
    if http_status == 429 or http_status >= 500:
        return ErrorAction.RETRY
    return ErrorAction.NO_RETRY
