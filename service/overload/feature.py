"""Degrade mode's setup: the monitor, provided on the runtime and shown in ``/ready``."""

from __future__ import annotations

from service.overload.monitor import OverloadMonitor
from service.runtime import Runtime


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings

    async def queue_age() -> float:
        queue = runtime.queue
        if queue is None:
            return 0.0
        stats = await queue.stats(runtime.handlers.queues())
        return max((s.oldest_ready_age for s in stats), default=0.0)

    monitor = OverloadMonitor(settings, queue_age=queue_age)
    runtime.provide(OverloadMonitor, monitor)
    runtime.add_component(monitor)
    runtime.add_readiness_info("degrade", monitor.readiness)
