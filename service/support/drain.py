"""Moving ``/ws/support`` clients to another process before this one stops.

On SIGTERM (or the app's shutdown) each open connection is sent a ``reconnect`` frame (with a
jittered ``retry_after_ms``) and then closed with 1012 (service restart), the connections
spread over ``KERVAN_SUPPORT_DRAIN_SECONDS`` so thousands of clients do not reconnect in the
same instant. Nothing is lost: what was queued for a connection is flushed before its close,
rooms are streams that a client resumes from its last offset on any process, and a waiting
customer keeps the place in the queue with the resume token. From the first moment of the drain
``/ready`` fails (load balancers stop routing here) and a new connection is refused the same
way (``reconnect``, then 1012).

granian closes every WebSocket the moment its worker is told to stop, before the app's
lifespan shutdown runs, so the drain cannot wait for the lifespan: when the running loop owns
SIGTERM (a granian worker: the server routes its signals through the loop), the drain takes
SIGTERM over, and once the clients are gone it raises SIGINT, which the server still handles
as before (stop serving, then the lifespan shutdown: the queue worker's grace and the other
components). Under any other server the lifespan shutdown drains what is still connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections.abc import Callable
from typing import Any, Protocol

from starlette.websockets import WebSocket

from core.errors import KervanError
from service.logging import get_logger
from service.support.metrics import SUPPORT
from service.support.protocol import frame

log = get_logger("kervan.support.drain")

#: Close code of a drained connection: the service restarts, try again (RFC 6455 registry).
CLOSE_SERVICE_RESTART = 1012
CLOSE_REASON = "server restarting: reconnect to resume"
#: A client waits between these fractions of ``RETRY_BASE_MS`` before reconnecting (on top of
#: the spread of the closes over the drain period).
RETRY_BASE_MS = 1000
RETRY_JITTER = (0.25, 1.0)
#: Beyond the drain period: the last connections' flush (1 s) and closing handshakes.
CLOSE_MARGIN_SECONDS = 3.0


class Draining(KervanError):
    """This process is draining: not ready for new work (``/ready`` fails with it)."""

    code = "draining"


class Drainable(Protocol):
    """A connection the drain can move: told with the frame to send before its close."""

    def go_away(self, reconnect: bytes, code: int, reason: str) -> None: ...


def reconnect_frame(retry_after_ms: int) -> bytes:
    return frame("reconnect", reason="shutdown", retry_after_ms=retry_after_ms)


def _loop_owns(loop: asyncio.AbstractEventLoop, sig: int) -> bool:
    """Whether ``sig`` is handled by ``loop`` (``loop.add_signal_handler``), as granian's
    workers do; uvloop installs a handler bound to the loop, asyncio keeps a table."""
    handler = signal.getsignal(sig)
    if getattr(handler, "__self__", None) is loop:
        return True
    table: Any = getattr(loop, "_signal_handlers", None)
    return isinstance(table, dict) and sig in table


class SupportDrain:
    """A runtime component (started after the desk, so stopped before it)."""

    name = "support-drain"

    def __init__(
        self,
        period: float,
        *,
        rng: random.Random | None = None,
        take_signals: bool = True,
        hand_over: Callable[[], None] | None = None,
    ) -> None:
        if period < 0:
            raise ValueError("the drain period must be >= 0")
        self.period = period
        self.stop_timeout = period + CLOSE_MARGIN_SECONDS + 1.0
        self.draining = False
        self._rng = rng or random.Random()
        self._take_signals = take_signals
        self._hand_over = hand_over or _raise_sigint
        self._sessions: set[Drainable] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._task: asyncio.Task[None] | None = None
        self._signal_loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # --- connections ---------------------------------------------------------------------
    def enter(self, session: Drainable) -> bool:
        """Count a new connection in; False while draining (refuse it with ``refuse``)."""
        if self.draining:
            return False
        self._sessions.add(session)
        self._empty.clear()
        return True

    def leave(self, session: Drainable) -> None:
        self._sessions.discard(session)
        if not self._sessions:
            self._empty.set()

    @property
    def connections(self) -> int:
        return len(self._sessions)

    def retry_after_ms(self) -> int:
        return round(RETRY_BASE_MS * self._rng.uniform(*RETRY_JITTER))

    async def refuse(self, websocket: WebSocket) -> None:
        """A connection opened while draining: told to go elsewhere at once."""
        SUPPORT.drained.labels("refused").inc()
        await websocket.accept()
        with contextlib.suppress(Exception):
            await websocket.send_text(reconnect_frame(self.retry_after_ms()).decode())
            await websocket.close(CLOSE_SERVICE_RESTART, CLOSE_REASON)

    async def readiness(self) -> None:
        if self.draining:
            raise Draining("draining: support clients are moving to other processes")

    # --- the drain -----------------------------------------------------------------------
    def begin(self) -> asyncio.Task[None]:
        """Start draining (idempotent); the task ends when every connection is gone or the
        period and its margin have passed."""
        if self._task is None:
            self.draining = True
            self._task = asyncio.get_running_loop().create_task(self._drain(), name=self.name)
        return self._task

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        sessions = list(self._sessions)
        if not sessions:
            return
        self._rng.shuffle(sessions)
        log.info(
            "draining support connections",
            extra={"connections": len(sessions), "period_s": self.period},
        )
        start = loop.time()
        for index, session in enumerate(sessions):
            # Evenly spread over the period, in random order.
            delay = start + self.period * index / len(sessions) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if session not in self._sessions:
                continue  # gone by itself meanwhile
            SUPPORT.drained.labels("told").inc()
            try:
                session.go_away(
                    reconnect_frame(self.retry_after_ms()), CLOSE_SERVICE_RESTART, CLOSE_REASON
                )
            except Exception:
                log.exception("a support connection could not be drained")
        left = start + self.period + CLOSE_MARGIN_SECONDS - loop.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), max(left, 0.0))
        log.info(
            "support connections drained",
            extra={"left": len(self._sessions), "took_s": round(loop.time() - start, 2)},
        )

    def _on_terminate(self) -> None:
        if self._stopping or self._task is not None:
            return  # a second SIGTERM (the server's master passes its own on): one drain
        self.begin().add_done_callback(lambda _task: self._hand_over())

    # --- the component -------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._take_signals and all(
            _loop_owns(loop, sig) for sig in (signal.SIGTERM, signal.SIGINT)
        ):
            loop.add_signal_handler(signal.SIGTERM, self._on_terminate)
            self._signal_loop = loop
            log.info("SIGTERM drains support connections first", extra={"period_s": self.period})

    async def stop(self) -> None:
        self._stopping = True
        task = self.begin()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)


def _raise_sigint() -> None:
    """Hand the shutdown back to the server: its handler of SIGINT is the one it had for
    SIGTERM (granian handles both alike)."""
    os.kill(os.getpid(), signal.SIGINT)
