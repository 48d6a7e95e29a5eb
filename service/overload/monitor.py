"""The degrade-mode monitor of one process: samples event-loop lag, request durations and the
oldest ready job's age, decides with hysteresis (``core/overload/hysteresis.py``), and tells
whoever sheds work (the edge, the image renderer, the speculation refresh) through
``shedding``. Each change is logged once and counted; the state is a metric and in ``/ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter, Gauge
from starlette.responses import Response

from core.overload.hysteresis import Hysteresis
from service.errors import ApiError, error_response
from service.logging import get_logger
from service.metrics import REGISTRY
from service.overload.settings import DegradeSettings

log = get_logger("kervan.overload")

DEGRADED = Gauge(
    "kervan_degraded", "1 while this process sheds low-priority work.", registry=REGISTRY
)
TRANSITIONS = Counter(
    "kervan_degrade_transitions_total",
    "Degrade mode entered or left, by direction.",
    ["to"],
    registry=REGISTRY,
)
SHED = Counter(
    "kervan_shed_total",
    "Low-priority work refused or skipped in degrade mode, by kind (prefetch, dashboard, "
    "image_render, speculation_refresh).",
    ["kind"],
    registry=REGISTRY,
)

LAG_PERIOD = 0.05
EVALUATE_EVERY = 0.25
WINDOW_SECONDS = 5.0
QUEUE_EVERY = 5.0
MAX_SAMPLES = 4096

QueueAge = Callable[[], Awaitable[float]]


class OverloadMonitor:
    """A runtime component; ``shedding`` is read on hot paths (a plain attribute)."""

    def __init__(
        self,
        settings: DegradeSettings,
        *,
        queue_age: QueueAge | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.queue_age = queue_age
        self.monotonic = monotonic
        self.state = Hysteresis(
            enter_after=settings.degrade_enter_seconds,
            exit_after=settings.degrade_exit_seconds,
            exit_ratio=settings.degrade_exit_ratio,
        )
        self.shedding = settings.degrade_mode == "on"
        self.signals: dict[str, float] = {"loop_lag_ms": 0.0, "p99_ms": 0.0, "queue_age_s": 0.0}
        self._lags: deque[tuple[float, float]] = deque(maxlen=64)
        self._durations: deque[tuple[float, float]] = deque(maxlen=MAX_SAMPLES)
        #: Where ``record`` appends ``(monotonic time, seconds)``: the compiled RSGI front
        #: appends there itself when the clock is the system's monotonic one (as its own is).
        self.durations = self._durations
        self._tasks: list[asyncio.Task[None]] = []
        DEGRADED.set(1 if self.shedding else 0)

    @property
    def thresholds(self) -> dict[str, float]:
        s = self.settings
        return {
            "loop_lag_ms": s.degrade_loop_lag_ms,
            "p99_ms": s.degrade_p99_ms,
            "queue_age_s": s.degrade_queue_age_seconds,
        }

    async def start(self) -> None:
        if self.settings.degrade_mode != "auto":
            return
        self._tasks = [
            asyncio.create_task(self._sample_lag(), name="overload-lag"),
            asyncio.create_task(self._evaluate_forever(), name="overload-evaluate"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def record(self, seconds: float) -> None:
        """One request's duration (the edge calls this for every request it answered)."""
        self._durations.append((self.monotonic(), seconds))

    def refuse(self, kind: str) -> ApiError:
        """The error of a shed request of ``kind`` (counted)."""
        return overloaded(kind, self.settings.degrade_retry_after_seconds)

    def skip(self, kind: str) -> bool:
        """Whether to skip low-priority background work of ``kind`` now (counted when so)."""
        if self.shedding:
            SHED.labels(kind).inc()
        return self.shedding

    async def _sample_lag(self) -> None:
        while True:
            before = self.monotonic()
            await asyncio.sleep(LAG_PERIOD)
            now = self.monotonic()
            self._lags.append((now, max(0.0, (now - before - LAG_PERIOD) * 1000)))

    async def _evaluate_forever(self) -> None:
        next_queue = 0.0
        while True:
            await asyncio.sleep(EVALUATE_EVERY)
            now = self.monotonic()
            if self.queue_age is not None and now >= next_queue:
                next_queue = now + QUEUE_EVERY
                try:
                    self.signals["queue_age_s"] = await self.queue_age()
                except Exception as exc:  # a failing queue read is not overload
                    log.debug("queue age unknown: %s", exc)
            self.evaluate(now)

    def evaluate(self, now: float) -> None:
        """Read the signals at ``now`` and apply the decision."""
        recent = [lag for at, lag in self._lags if now - at <= 1.0]
        self.signals["loop_lag_ms"] = max(recent, default=0.0)
        durations = sorted(d for at, d in self._durations if now - at <= WINDOW_SECONDS)
        if durations:
            self.signals["p99_ms"] = (
                durations[min(len(durations) - 1, int(0.99 * len(durations)))] * 1000
            )
        else:
            self.signals["p99_ms"] = 0.0
        change = self.state.evaluate(now, self.signals, self.thresholds)
        if change is None:
            return
        self.shedding = change.degraded
        DEGRADED.set(1 if change.degraded else 0)
        TRANSITIONS.labels("degraded" if change.degraded else "normal").inc()
        rounded = {k: round(v, 1) for k, v in self.signals.items()}
        if change.degraded:
            log.warning(
                "degrade mode on: shedding low-priority work (%s; signals %s)",
                ", ".join(change.reasons),
                rounded,
            )
        else:
            log.warning(
                "degrade mode off (was: %s; signals %s)", ", ".join(change.reasons), rounded
            )

    async def readiness(self) -> dict[str, Any]:
        return {
            "mode": self.settings.degrade_mode,
            "shedding": self.shedding,
            "since_seconds": (
                round(self.monotonic() - self.state.since, 1)
                if self.state.since is not None
                else None
            ),
            "reasons": list(self.state.reasons),
            "signals": {k: round(v, 1) for k, v in self.signals.items()},
            "thresholds": self.thresholds,
        }


def overloaded(kind: str, retry_after: int) -> ApiError:
    """The 503 a shed request gets: the client retries later; nothing was done."""
    SHED.labels(kind).inc()
    return ApiError(
        503,
        "overloaded",
        "the server is shedding low-priority work under load; retry later",
        details={"kind": kind},
        headers={"Retry-After": str(retry_after)},
    )


def shed_response(monitor: OverloadMonitor, kind: str) -> Response:
    """The edge's answer to a low-priority request while shedding (an ASGI app)."""
    error = monitor.refuse(kind)
    return error_response(error.status, error.code, error.message, error.details, error.headers)
