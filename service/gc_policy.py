"""The garbage collector of a server process: full collections at a known rhythm, not at random.

CPython runs a full collection once enough objects have survived the younger ones, and a full
collection walks every tracked object alive. ``gc.freeze()`` after start-up (``create_app``)
hides the imports and the features from it, but a busy process builds a long-lived heap of its
own afterwards: the live-support relay with 1,000 WebSocket clients (``bench/bench_support.py``)
ran ten full collections in 40 seconds, each 100-140 ms long (measured with ``gc.callbacks``),
each freeing a few dozen objects, and its p99 at 500 msg/s went from 8 ms to 45-50 ms in the runs
that met one.

``tune()`` leaves the young collections to CPython and stops its own full ones;
``FullCollections`` (a periodic task the app's lifespan starts and stops) runs one every
``gc_full_collect_seconds`` instead, so reference cycles among long-lived objects are still
freed, on a rhythm an operator chose. Every collection's pause is measured
(``kervan_gc_pause_seconds`` by generation).

Young collections are made rarer too (``YOUNG_THRESHOLD``, ten times CPython's 700). Each one
walks what is alive among the objects made since the last one, and under load that is the work
in flight, not garbage: at full relay load the server ran 23-26 young collections a second,
each 1.1-1.5 ms of CPU walking 1,500-4,500 coroutines, futures and handles of messages on their
way (``gc.get_objects(0)`` at a collection's start), about 6% of its event loop's time; with
this threshold it ran none in ten seconds of that load. A server's
objects are mostly freed by their reference counts, so the count CPython keeps (allocations less
deallocations) seldom reaches the higher threshold in a steady state; cycles still go at the
next young collection or the next full one.

``steady_heap()`` is all of it for a process's lifetime: the app's lifespan and ``kervan
worker`` use it. The worker needs it as much as a server: its history writer, at full relay
load, ran full collections of 110-150 ms (timed with ``gc.callbacks``) while it held a
database transaction and one of the machine's cores.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import Histogram

from service.metrics import REGISTRY
from service.periodic import Periodic

#: CPython's third threshold: full collections only after this many middle ones (never, here:
#: ``FullCollections`` runs them).
NO_AUTOMATIC_FULL = 1 << 30
#: CPython's first threshold: a young collection once allocations exceed deallocations by this.
YOUNG_THRESHOLD = 7_000

PAUSES = Histogram(
    "kervan_gc_pause_seconds",
    "Pauses of the garbage collector, by generation (2: full collections).",
    ["generation"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
    registry=REGISTRY,
)


class _PauseTimer:
    """A ``gc.callbacks`` entry observing each collection's duration."""

    def __init__(self) -> None:
        self._started = 0.0
        self._by_generation = [PAUSES.labels(str(g)) for g in range(3)]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)


_timer = _PauseTimer()


def tune(full_every_seconds: float) -> None:
    """Measure every pause; with ``full_every_seconds`` > 0, rarer young collections and no
    automatic full ones (``FullCollections`` runs them). Idempotent."""
    if _timer not in gc.callbacks:
        gc.callbacks.append(_timer)
    if full_every_seconds > 0:
        _, middle, _ = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, middle, NO_AUTOMATIC_FULL)


class FullCollections(Periodic):
    """One full collection every ``interval`` seconds (the first after one interval)."""

    name = "gc-full-collections"

    def __init__(self, interval: float) -> None:
        super().__init__(interval)
        self._first = True

    async def step(self) -> None:
        if self._first:  # start-up just collected and froze the heap
            self._first = False
            return
        gc.collect()


@asynccontextmanager
async def steady_heap(full_every_seconds: float) -> AsyncIterator[None]:
    """After start-up: what is alive moves out of the collector's view (``gc.freeze``), and
    full collections run every ``full_every_seconds`` (0: CPython's own policy) until exit."""
    gc.collect()
    gc.freeze()
    tune(full_every_seconds)
    full = FullCollections(full_every_seconds) if full_every_seconds > 0 else None
    if full is not None:
        await full.start()
    try:
        yield
    finally:
        if full is not None:
            await full.stop()


__all__ = [
    "NO_AUTOMATIC_FULL",
    "PAUSES",
    "YOUNG_THRESHOLD",
    "FullCollections",
    "steady_heap",
    "tune",
]
