"""/ws/support on a real ``kervan serve`` (granian, embedded backends): a close that another task
asks for (here the heartbeat's) reaches a client that sends nothing.

Such a close cancels the task that reads the client's frames, a task of its own beside the
server's request task (``SupportSession._read_frames``); the in-process tests run under
Starlette's test client, whose tasks are plain asyncio tasks, so this checks it under granian.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from tests.support.procs import Server
from tests.support.wsclient import Client

pytestmark = pytest.mark.slow

HEARTBEAT = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("served")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERVAN_")}
    env.update(
        KERVAN_HOST="127.0.0.1",
        KERVAN_DATA_DIR=str(folder / "data"),
        KERVAN_ADMIN_API_KEY="test-admin-key",
        KERVAN_RATELIMIT_DEFAULT_POLICY="",
        KERVAN_DEGRADE_MODE="off",
        KERVAN_SUPPORT_HEARTBEAT_SECONDS=str(HEARTBEAT),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    served = Server("embedded", env, folder)
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


async def test_a_silent_client_is_closed_after_two_heartbeats(server: Server) -> None:
    async with server.desk.connect() as client:
        await client.send({"type": "hello", "role": "customer", "name": "Sessiz"})
        await client.expect("welcome")
        # Nothing sent from here on (pings unanswered); frames are read only at the end.
        await asyncio.sleep(6 * HEARTBEAT)
        await _closed(client)
        assert client.socket.close_code == 4000
        assert client.socket.close_reason == "heartbeat missed"


async def test_a_client_that_answers_pings_stays(server: Server) -> None:
    async with server.desk.connect() as client:
        await client.send({"type": "hello", "role": "customer", "name": "Aktif"})
        await client.expect("welcome")
        for _ in range(4):
            await client.expect("ping", timeout=5 * HEARTBEAT)
            await client.send({"type": "pong"})
        assert client.socket.close_code is None


async def _closed(client: Client) -> None:
    with pytest.raises(websockets.exceptions.ConnectionClosed):
        while True:
            await asyncio.wait_for(client.socket.recv(), 10)
