"""``kervan worker``: a process that runs the outbound queue's worker and nothing else.

It sets up the same features as the web app (``service/features.py``), so every queue handler is
registered here too, and runs the worker whatever the embedded setting says. Its collector
follows the servers' policy (``service/gc_policy.py``).
"""

from __future__ import annotations

import asyncio
import signal

import uvloop

from core.clock import SYSTEM_CLOCK
from core.errors import KervanError
from service.features import setup_features
from service.gc_policy import steady_heap
from service.logging import get_logger
from service.runtime import build_runtime
from service.settings import Settings

log = get_logger("kervan.queue.worker")


def run_worker(settings: Settings, queues: list[str] | None = None) -> int:
    """Run the outbound worker until SIGTERM/SIGINT; returns the process exit code."""
    # uvloop, as the API processes: the worker's hot loop (the chat history's feed, the
    # queue's reads) is mostly socket round trips.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(settings, queues))


async def _serve(settings: Settings, queues: list[str] | None) -> int:
    runtime = build_runtime(settings, SYSTEM_CLOCK)
    runtime.worker_wanted = True
    runtime.worker_queues = queues
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await setup_features(runtime)
        await runtime.start()
        async with steady_heap(settings.gc_full_collect_seconds):
            await stop.wait()
        log.info("worker stopping on signal")
    except KervanError as exc:
        log.error("worker failed: %s", exc.message)
        return 1
    finally:
        await runtime.close()
    return 0
