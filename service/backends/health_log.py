"""Backend outages logged as state changes, not once per failed call.

While Redis cannot be reached, every request and every background loop that needs it fails, and
each used to log a warning: thousands of lines a minute, all saying the same thing. Every place
that handles a failed backend call passes the error to ``outage_logged``; an outage (the
backend could not be reached, did not answer in time, or refuses writes during a failover) is
then logged only as its state changes:

* ``redis unavailable`` at the first failure;
* ``redis still unavailable`` at most once every ``REPORT_SECONDS`` while failures go on, with
  the number of calls that failed since the previous line;
* ``redis available again`` at the first call that succeeds afterwards (``redis_errors`` reports
  every successful call), with the outage's length and failed calls.

A backend that flips between failing and answering gives at most two lines per period. Any other
failure (an error reply, an unreadable answer) is not an outage: ``outage_logged`` returns
False and the caller logs it as before. The state is the process's, like the log stream it
shapes; ``kervan_backend_errors_total`` counts every failed call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.errors import StateBackendError
from service.logging import get_logger
from service.metrics import BACKEND_ERRORS

log = get_logger("kervan.backends")

#: Longest silence about an outage that goes on (while calls keep failing).
REPORT_SECONDS = 10.0
#: Causes that mean Redis cannot serve at all (``BusyLoadingError``, Redis replaying its
#: append-only file after a restart, is a ``ConnectionError``).
_OUTAGE_CAUSES = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)


class BackendHealthLog:
    """Whether one backend answers, as the log tells it: a line per change of state."""

    def __init__(
        self,
        component: str,
        *,
        interval: float = REPORT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.component = component
        self.interval = interval
        self._clock = clock
        self._errors = BACKEND_ERRORS.labels(component)
        #: Calls are failing now (told or not yet).
        self.down = False
        #: The last line said the backend is unavailable.
        self._told_down = False
        self._last_line = -float("inf")
        self._down_since = 0.0
        self._outage_failures = 0  # since ``_down_since``
        self._unreported = 0  # since the last line

    def failed(self, source: str, message: str) -> None:
        """A call failed because the backend is out; ``source`` says what made it."""
        self._errors.inc()
        now = self._clock()
        self._unreported += 1
        if not self.down:
            self.down = True
            self._down_since = now
            self._outage_failures = 0
        self._outage_failures += 1
        if now - self._last_line < self.interval:
            return  # within a period already reported on: counted for the next line
        if self._told_down:
            log.warning(
                "%s still unavailable: %d failed calls in the last %.0f s, the latest: %s (%s)",
                self.component,
                self._unreported,
                now - self._last_line,
                message,
                source,
                extra={
                    "component": self.component,
                    "source": source,
                    "failures": self._unreported,
                    "down_seconds": round(now - self._down_since, 3),
                },
            )
        else:
            self._told_down = True
            log.warning(
                "%s unavailable: %s (%s)",
                self.component,
                message,
                source,
                extra={"component": self.component, "source": source, "failures": self._unreported},
            )
        self._last_line = now
        self._unreported = 0

    def answered(self) -> None:
        """A call succeeded: the end of an outage, if one is on."""
        if not self.down:
            return
        self.down = False
        if not self._told_down:
            return  # a dip no line told of yet: its calls are counted in the next line
        self._told_down = False
        now = self._clock()
        log.warning(
            "%s available again after %.1f s (%d failed calls)",
            self.component,
            now - self._down_since,
            self._outage_failures,
            extra={
                "component": self.component,
                "down_seconds": round(now - self._down_since, 3),
                "failures": self._outage_failures,
            },
        )
        self._last_line = now
        self._unreported = 0


#: Redis as this process sees it (every Redis call passes ``redis_errors``).
REDIS = BackendHealthLog("redis")


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` is a failed Redis call because Redis is out (not an error reply)."""
    return isinstance(error, StateBackendError) and isinstance(error.__cause__, _OUTAGE_CAUSES)


def outage_logged(error: BaseException, source: str) -> bool:
    """Counts ``error`` and logs it as a state change when it is an outage (True); False when
    it is not one and the caller must log it itself. ``source`` says what failed, e.g.
    ``"claiming jobs"`` or ``"GET /ready"``."""
    if not is_outage(error):
        return False
    assert isinstance(error, StateBackendError)
    REDIS.failed(source, error.message)
    return True
