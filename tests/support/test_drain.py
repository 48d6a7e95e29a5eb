"""The support drain in one process: every client is told to reconnect (a ``reconnect`` frame,
then close 1012 with the reason), spread over the drain period; meanwhile ``/ready`` fails and
new connections are sent away the same way; SIGTERM starts it when the loop owns the signal,
and the server gets the shutdown back afterwards.

Across real processes (SIGTERM to a ``kervan serve``, the client resuming on another one):
``tests/support/test_drain_processes.py``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import orjson
import pytest
import websockets

from service.support.drain import (
    CLOSE_REASON,
    CLOSE_SERVICE_RESTART,
    RETRY_BASE_MS,
    RETRY_JITTER,
    Draining,
    SupportDrain,
)
from tests.support.wsclient import WAIT, Client, Desk, admin_token

LOW, HIGH = (round(RETRY_BASE_MS * f) for f in RETRY_JITTER)


async def closed_with(client: Client) -> tuple[int | None, str | None]:
    """Read (and keep) frames until the server closes; its close code and reason."""
    try:
        while True:
            raw = await asyncio.wait_for(client.socket.recv(), WAIT)
            client.frames.append(orjson.loads(raw))
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None, "closed without a close frame"
        return closed.rcvd.code, closed.rcvd.reason


def told_to_reconnect(found: dict[str, Any]) -> None:
    assert found["type"] == "reconnect"
    assert found["reason"] == "shutdown"
    assert LOW <= found["retry_after_ms"] <= HIGH


class FakeSession:
    """A connection as the drain sees it: records when and how it was told."""

    def __init__(self, drain: SupportDrain, told: list[tuple[float, Any, int, str]]) -> None:
        self.drain = drain
        self.told = told

    def go_away(self, reconnect: bytes, code: int, reason: str) -> None:
        self.told.append((asyncio.get_running_loop().time(), orjson.loads(reconnect), code, reason))
        self.drain.leave(self)


async def test_clients_are_told_to_reconnect_then_closed_and_new_ones_sent_away(
    serve_desk: Callable[..., AbstractAsyncContextManager[Desk]],
) -> None:
    async with serve_desk(support_drain_seconds=0.2) as desk:
        http = desk.url.replace("ws://", "http://")
        token = await admin_token(desk.runtime, "drain-mert")
        async with desk.admin(token) as admin, desk.customer("Ayşe") as customer:
            room = customer.welcome["person"]
            await customer.send({"type": "queue:join"})
            await customer.expect("room:joined", room=room)
            await admin.expect("room:joined", room=room)
            assert (await customer.chat(room, "Merhaba"))["offset"] == 1
            async with httpx.AsyncClient(base_url=http, timeout=WAIT) as client:
                before = (await client.get("/ready")).json()
                components = before.get("components") or before["error"]["details"]["components"]
                assert components["support_drain"] == "ok"

                drain = desk.runtime.facility(SupportDrain)
                task = drain.begin()
                for each in (customer, admin):
                    told_to_reconnect(await each.expect("reconnect"))
                    assert await closed_with(each) == (CLOSE_SERVICE_RESTART, CLOSE_REASON)
                    # The reconnect frame is the last frame before the close.
                    assert all(f["type"] != "reconnect" for f in each.frames)

                ready = await client.get("/ready")
                assert ready.status_code == 503
                error = ready.json()["error"]
                assert error["details"]["components"]["support_drain"].startswith("draining")
                assert "support_drain" in error["message"]

                # A connection opened during the drain is sent elsewhere before any hello.
                async with desk.connect() as late:
                    told_to_reconnect(orjson.loads(await late.socket.recv()))
                    assert await closed_with(late) == (CLOSE_SERVICE_RESTART, CLOSE_REASON)
                await task
                assert drain.connections == 0


async def test_the_drain_spreads_clients_over_its_period_in_random_order() -> None:
    period = 0.4
    told: list[tuple[float, Any, int, str]] = []
    drain = SupportDrain(period, rng=random.Random(7), take_signals=False)
    sessions = [FakeSession(drain, told) for _ in range(8)]
    for session in sessions:
        assert drain.enter(session)
    start = asyncio.get_running_loop().time()
    await drain.begin()
    assert len(told) == 8 and drain.connections == 0
    times = [at for at, _, _, _ in told]
    # Not all at once: the last is told no earlier than its place in the period (sleeps only
    # ever end late, so this bound cannot fail on a slow machine).
    assert times[-1] - start >= period * 7 / 8 - 0.01
    for _, data, code, reason in told:
        told_to_reconnect(data)
        assert (code, reason) == (CLOSE_SERVICE_RESTART, CLOSE_REASON)
    # Jittered per client.
    assert len({data["retry_after_ms"] for _, data, _, _ in told}) > 1
    assert not drain.enter(FakeSession(drain, told))
    with pytest.raises(Draining, match="draining"):
        await drain.readiness()


async def test_stopping_the_app_drains_what_is_still_connected() -> None:
    told: list[tuple[float, Any, int, str]] = []
    drain = SupportDrain(0.0, take_signals=False)
    session = FakeSession(drain, told)
    assert drain.enter(session)
    await drain.start()
    await drain.readiness()
    await drain.stop()
    assert len(told) == 1 and told[0][2] == CLOSE_SERVICE_RESTART


async def test_sigterm_starts_the_drain_and_hands_the_shutdown_back_to_the_server() -> None:
    """A granian worker handles SIGTERM and SIGINT on its loop; the drain takes SIGTERM over
    and, once the clients are gone, raises SIGINT for the server's own handler."""
    loop = asyncio.get_running_loop()
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    server_saw: list[str] = []
    handed = asyncio.Event()
    told: list[tuple[float, Any, int, str]] = []
    loop.add_signal_handler(signal.SIGTERM, server_saw.append, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, server_saw.append, "SIGINT")
    try:
        drain = SupportDrain(0.05, hand_over=handed.set)
        assert drain.enter(FakeSession(drain, told))
        await drain.start()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(handed.wait(), WAIT)
        assert len(told) == 1
        assert server_saw == []  # the server did not start stopping before the drain ended
        # A second SIGTERM (the server's master passes its own on) starts nothing new.
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)
        assert len(told) == 1 and server_saw == []
        await drain.stop()
    finally:
        for sig, handler in saved.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)


async def test_without_a_loop_owned_sigterm_the_signal_is_left_alone() -> None:
    saved = signal.getsignal(signal.SIGTERM)
    drain = SupportDrain(0.0)
    await drain.start()
    assert signal.getsignal(signal.SIGTERM) is saved
    await drain.stop()
