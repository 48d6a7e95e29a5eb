"""Periodic background work as a runtime component: a step at start, then one every interval.

A failing step is reported (``on_error``) and the loop goes on: a refresher, purge or sweep that
stopped at its first error would fail silently for the rest of the process's life.
"""

from __future__ import annotations

import asyncio
import contextlib

from service.backends.health_log import outage_logged
from service.logging import get_logger

log = get_logger("kervan.periodic")


def raise_if_cancelling() -> None:
    """Stop a background loop whose task was asked to stop, even when the cancellation was lost.

    A driver may turn a cancellation into its own error (redis-py does, in the middle of a read)
    and a step that reports errors then swallows it: a loop that sleeps on keeps ``stop()``
    waiting for its next interval. Call it between a step and the sleep.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Periodic:
    #: The asyncio task's name (seen in task dumps and debuggers).
    name = "periodic"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def step(self) -> None:
        raise NotImplementedError

    def on_error(self, error: Exception) -> None:
        if not outage_logged(error, self.name):
            log.warning("%s failed: %s", self.name, error, extra={"task": self.name})

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception as error:
                self.on_error(error)
            raise_if_cancelling()
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
