"""The hub's reader outlives Redis going away: it reports itself unhealthy, retries, and
resumes delivery, with a reset when the server came back without its data.

Each test acts on every client of the server (CLIENT KILL, SHUTDOWN), so both run against a
redis-server of this module's own (tests/conftest.py::private_redis_url), never the shared one.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as sync_redis

from core.errors import StateBackendError
from service.backends import Backends, redis_backends
from service.support.hub import RoomHub
from service.support.roomlog import RoomEntry, RoomLog
from service.support.stores import create_room_log
from tests.services import require_tool
from tests.support.test_hub_delivery import Collector, payload, wait_until

pytestmark = pytest.mark.redis


@dataclass
class Process:
    backends: Backends
    log: RoomLog
    hub: RoomHub


@pytest.fixture
async def process(private_redis_url: str) -> AsyncIterator[Process]:
    backends = redis_backends(private_redis_url, "outage", timeout=0.5)
    log = create_room_log(backends)
    hub = RoomHub(log, block=0.05, check_every=0.1, backoff=0.02, backoff_cap=0.2)
    await hub.start()
    yield Process(backends, log, hub)
    await hub.stop()
    await log.close()
    await backends.close()


@pytest.fixture
def admin(private_redis_url: str) -> Iterator[sync_redis.Redis]:
    client = sync_redis.Redis.from_url(private_redis_url, socket_timeout=5)
    yield client
    client.close()


async def test_cut_connections_are_replaced_and_nothing_is_missed(
    process: Process, admin: sync_redis.Redis, private_redis_url: str
) -> None:
    epoch, _ = await process.log.epoch("kept")
    sink = Collector()
    process.hub.subscribe("kept", sink, after=0, epoch=epoch, on_reset=sink.on_reset)
    for i in range(1, 4):
        await process.hub.publish("kept", payload(i))
    await wait_until(lambda: sink.offsets[-1:] == [3])
    for i in range(4, 7):
        # Every connection of the hub's process, the blocked reader's included; another
        # process (connected afterwards) appends meanwhile.
        admin.client_kill_filter(_type="normal", skipme=True)
        other = redis_backends(private_redis_url, "outage")
        other_log = create_room_log(other)
        try:
            assert await other_log.append("kept", payload(i)) == (epoch, i)
        finally:
            await other_log.close()
            await other.close()
    await wait_until(lambda: sink.offsets[-1:] == [6])
    assert sink.entries == [RoomEntry("kept", i, payload(i), epoch) for i in range(1, 7)]
    assert sink.resets == []
    await wait_until(lambda: process.hub.healthy)


async def publish(hub: RoomHub, room: str, body: bytes) -> RoomEntry:
    """A pooled connection left idle through the restart still points at the old server and
    fails once when used; nothing ran on it, so trying again appends exactly once."""
    for _ in range(10):
        try:
            return await hub.publish(room, body)
        except StateBackendError:
            continue
    raise AssertionError("the restarted Redis never took the append")


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    binary = require_tool("redis-server", "restarting a private Redis")
    server = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    probe = sync_redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if probe.ping():
                    return server
            except sync_redis.RedisError:
                time.sleep(0.05)
    finally:
        probe.close()
    server.kill()
    server.wait(5)
    raise RuntimeError(f"redis-server did not come back on port {port}")


async def test_redis_stopped_and_started_without_its_data(
    process: Process, admin: sync_redis.Redis, tmp_path: Path
) -> None:
    port = int(admin.connection_pool.connection_kwargs["port"])
    old, _ = await process.log.epoch("r")
    sink = Collector()
    process.hub.subscribe("r", sink, after=0, epoch=old, on_reset=sink.on_reset)
    for i in range(1, 4):
        await process.hub.publish("r", payload(i))
    await wait_until(lambda: sink.offsets[-1:] == [3])
    assert process.hub.healthy

    admin.shutdown(nosave=True)
    await wait_until(lambda: not process.hub.healthy)
    with pytest.raises(StateBackendError):
        await process.hub.publish("r", payload(99))

    restarted = start_redis(port, tmp_path)
    try:
        await wait_until(lambda: process.hub.healthy)
        # The data is gone: the next append starts a new epoch, and the sink is told.
        new = (await publish(process.hub, "r", payload(4))).epoch
        assert new != old
        await wait_until(lambda: sink.resets != [])
        for i in range(5, 8):
            await publish(process.hub, "r", payload(i))
        await wait_until(lambda: sink.entries[-1:] != [] and sink.entries[-1].payload == payload(7))
        [(epoch, last)] = sink.resets
        assert epoch == new
        assert sink.offsets[: sink.reset_at[0]] == [1, 2, 3]
        # After the reset: the new epoch's offsets after the one it was told, in order, once.
        assert sink.entries[sink.reset_at[0] :] == [
            RoomEntry("r", o, payload(o + 3), new) for o in range(last + 1, 5)
        ]
    finally:
        restarted.terminate()
        restarted.wait(10)
