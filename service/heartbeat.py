"""Worker heartbeats in the state backend, read by ``/ready``.

Every worker (the in-process one in the embedded default, or ``kervan worker`` processes)
writes its id and the time into one hash; readiness asks whether any beat is fresh.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from core.clock import Clock
from core.errors import KervanError
from service.backends import Backends
from service.backends.health_log import outage_logged
from service.backends.keys import WORKER_HEARTBEAT, WORKER_HEARTBEAT_TTL
from service.logging import get_logger
from service.periodic import Periodic

log = get_logger("kervan.heartbeat")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class WorkerHeartbeat(Periodic):
    """A component that beats every ``interval`` seconds while it runs."""

    name = "worker-heartbeat"

    def __init__(
        self, backends: Backends, clock: Clock, *, ident: str | None = None, interval: float = 5.0
    ) -> None:
        super().__init__(interval)
        self.backends = backends
        self.clock = clock
        self.ident = ident or worker_id()

    async def beat(self) -> None:
        await self.backends.hashes.set(
            WORKER_HEARTBEAT,
            {self.ident: repr(self.clock.now()).encode()},
            ttl=WORKER_HEARTBEAT_TTL,
        )

    async def step(self) -> None:
        await self.beat()

    def on_error(self, error: Exception) -> None:
        if outage_logged(error, "worker heartbeat"):
            return
        message = error.message if isinstance(error, KervanError) else repr(error)
        log.warning("heartbeat failed: %s", message)

    async def stop(self) -> None:
        await super().stop()
        with contextlib.suppress(KervanError):
            await self.backends.hashes.delete(WORKER_HEARTBEAT, self.ident)


async def freshest_beat_age(backends: Backends, clock: Clock) -> float | None:
    """Seconds since the most recent beat of any worker; None when no worker ever beat."""
    beats = await backends.hashes.get_all(WORKER_HEARTBEAT)
    if not beats:
        return None
    latest = max(float(v) for v in beats.values())
    return max(0.0, clock.now() - latest)


def worker_readiness_check(
    backends: Backends, clock: Clock, max_age: float
) -> Callable[[], Awaitable[None]]:
    """A readiness check failing when no worker beat within ``max_age`` seconds."""

    async def check() -> None:
        age = await freshest_beat_age(backends, clock)
        if age is None:
            raise RuntimeError("no worker heartbeat")
        if age > max_age:
            raise RuntimeError(f"last worker heartbeat {age:.0f}s ago (limit {max_age:.0f}s)")

    return check
