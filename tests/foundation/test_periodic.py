"""Periodic components: a step at start, then every interval; errors never end the loop."""

from __future__ import annotations

import asyncio

from service.periodic import Periodic


class Flaky(Periodic):
    name = "flaky"

    def __init__(self) -> None:
        super().__init__(interval=0.001)
        self.steps = 0
        self.errors: list[str] = []

    async def step(self) -> None:
        self.steps += 1
        if self.steps % 2:
            raise RuntimeError(f"odd step {self.steps}")

    def on_error(self, error: Exception) -> None:
        self.errors.append(str(error))


async def test_errors_are_reported_and_the_loop_goes_on() -> None:
    task = Flaky()
    await task.start()
    await task.start()  # starting twice keeps one loop
    try:
        for _ in range(500):
            if task.steps >= 6:
                break
            await asyncio.sleep(0.005)
    finally:
        await task.stop()
    assert task.steps >= 6
    assert task.errors[:3] == ["odd step 1", "odd step 3", "odd step 5"]
    stopped_at = task.steps
    await asyncio.sleep(0.02)
    assert task.steps == stopped_at  # stop() ended the loop
    await task.stop()  # and stopping again is harmless


async def test_the_first_step_runs_at_start() -> None:
    task = Flaky()
    task.interval = 3600.0
    await task.start()
    try:
        for _ in range(200):
            if task.steps:
                break
            await asyncio.sleep(0.005)
    finally:
        await task.stop()
    assert task.steps == 1 and task.errors == ["odd step 1"]


class SwallowsCancellation(Periodic):
    """A step whose driver turns the cancellation into its own error, which the step reports
    and swallows (redis-py in the middle of a read, under a step that never raises)."""

    name = "swallows"

    def __init__(self) -> None:
        super().__init__(interval=3600.0)
        self.in_step = asyncio.Event()
        self.swallowed = 0

    async def step(self) -> None:
        self.in_step.set()
        try:
            await asyncio.sleep(3600.0)
        except asyncio.CancelledError:
            self.swallowed += 1  # as `except DriverError: log` after the driver's conversion


async def test_a_cancellation_swallowed_by_a_step_still_stops_the_loop() -> None:
    task = SwallowsCancellation()
    await task.start()
    await task.in_step.wait()
    # Without the check after the step, the loop would sleep out its hour-long interval.
    await asyncio.wait_for(task.stop(), 30.0)
    assert task.swallowed == 1
    assert task._task is None
