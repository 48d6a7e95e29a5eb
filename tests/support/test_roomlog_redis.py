"""Redis-only behaviour of room logs: lost keys start a new epoch, the layout of the keys, the
blocking read's own connection, and errors of an unreachable server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis as sync_redis

from core.errors import StateBackendError
from service.backends import Backends, redis_backends
from service.backends.keys import SUPPORT_ROOM_HEAD, SUPPORT_ROOM_STREAM, room_key
from service.support.roomlog import RoomEntry
from service.support.roomlog_redis import RedisRoomLog

pytestmark = pytest.mark.redis


@pytest.fixture
async def backends(redis_url: str, redis_namespace: str) -> AsyncIterator[Backends]:
    made = redis_backends(redis_url, redis_namespace)
    yield made
    await made.close()


@pytest.fixture
async def log(backends: Backends) -> AsyncIterator[RedisRoomLog]:
    made = RedisRoomLog(backends, retention=100.0)
    yield made
    await made.close()


@pytest.fixture
def admin(redis_url: str) -> sync_redis.Redis:
    return sync_redis.Redis.from_url(redis_url)


async def fill(log: RedisRoomLog, room: str, count: int) -> str:
    epoch = ""
    for i in range(1, count + 1):
        epoch, _ = await log.append(room, b'{"n":%d}' % i)
    return epoch


async def test_keys_ids_and_retention(
    log: RedisRoomLog, backends: Backends, admin: sync_redis.Redis
) -> None:
    epoch = await fill(log, "r", 3)
    stream = backends.key(room_key("r", SUPPORT_ROOM_STREAM))
    head = backends.key(room_key("r", SUPPORT_ROOM_HEAD))
    entries: Any = admin.xrange(stream)
    assert [ident for ident, _ in entries] == [b"1-0", b"2-0", b"3-0"]
    assert entries[0][1] == {b"p": b'{"n":1}', b"e": epoch.encode()}
    assert admin.hgetall(head) == {b"epoch": epoch.encode(), b"offset": b"3"}
    for key in (stream, head):
        assert 0 < admin.pttl(key) <= 100_000


@pytest.mark.parametrize("lost", ["head", "stream", "both"])
async def test_a_lost_key_starts_a_new_epoch(
    log: RedisRoomLog, backends: Backends, admin: sync_redis.Redis, lost: str
) -> None:
    old = await fill(log, "r", 4)
    keys = {
        "head": [backends.key(room_key("r", SUPPORT_ROOM_HEAD))],
        "stream": [backends.key(room_key("r", SUPPORT_ROOM_STREAM))],
        "both": [
            backends.key(room_key("r", SUPPORT_ROOM_HEAD)),
            backends.key(room_key("r", SUPPORT_ROOM_STREAM)),
        ],
    }[lost]
    admin.delete(*keys)
    new, offset = await log.append("r", b'{"n":5}')
    assert new != old and offset == 1
    replay = await log.since("r", old, 4)
    assert (replay.epoch, replay.recovered, replay.last_offset) == (new, False, 1)
    assert (await log.since("r", new, 0)).entries == [RoomEntry("r", 1, b'{"n":5}', new)]


async def test_a_lost_stream_is_seen_by_a_replay_before_any_append(
    log: RedisRoomLog, backends: Backends, admin: sync_redis.Redis
) -> None:
    old = await fill(log, "r", 2)
    admin.delete(backends.key(room_key("r", SUPPORT_ROOM_STREAM)))
    replay = await log.since("r", old, 1)
    assert not replay.recovered and replay.epoch != old and replay.last_offset == 0
    assert await log.append("r", b"{}") == (replay.epoch, 1)


async def test_the_whole_namespace_lost(
    log: RedisRoomLog, backends: Backends, admin: sync_redis.Redis
) -> None:
    epochs = {room: await fill(log, room, 3) for room in ("a", "b")}
    # Test-only: every key of this run's namespace, as a flushed Redis would have lost them.
    admin.delete(*admin.scan_iter(match=f"{backends.namespace}:*", count=1000))
    assert await log.heads(["a", "b"]) == {}
    for room, old in epochs.items():
        new, offset = await log.append(room, b"{}")
        assert new != old and offset == 1


async def test_scripts_are_reloaded_after_a_script_flush(
    log: RedisRoomLog, admin: sync_redis.Redis
) -> None:
    epoch = await fill(log, "r", 1)
    admin.script_flush()
    assert await log.append("r", b"{}") == (epoch, 2)
    admin.script_flush()
    assert (await log.since("r", epoch, 1)).last_offset == 2


async def test_the_blocking_read_does_not_take_a_shared_connection(
    redis_url: str, redis_namespace: str
) -> None:
    # One shared connection only: were the blocked XREAD on it, the append would wait until
    # the block ran out and the read would come back empty.
    shared = redis_backends(redis_url, redis_namespace, max_connections=1)
    log = RedisRoomLog(shared)
    try:
        epoch, _ = await log.epoch("r")
        reading = asyncio.create_task(log.read_many({"r": 0}, block=0.9))
        await asyncio.sleep(0.1)
        assert await log.append("r", b"{}") == (epoch, 1)
        assert await reading == [RoomEntry("r", 1, b"{}", epoch)]
    finally:
        await log.close()
        await shared.close()


async def test_the_reader_connects_as_the_shared_client_does(log: RedisRoomLog) -> None:
    shared = log._r.connection_pool
    own = log._reader.connection_pool
    assert own is not shared
    for name in ("host", "port", "db", "socket_timeout", "socket_connect_timeout"):
        assert own.connection_kwargs[name] == shared.connection_kwargs[name]
    assert own.connection_class is shared.connection_class
    assert own.max_connections == 2


async def test_an_unreachable_server_raises_state_backend_errors() -> None:
    dead = redis_backends("redis://127.0.0.1:1/0", "dead", timeout=0.5)
    log = RedisRoomLog(dead)
    try:
        calls = [
            log.append("r", b"{}"),
            log.epoch("r"),
            log.since("r", "e", 0),
            log.read_many({"r": 0}, block=0.1),
            log.heads(["r"]),
            log.drop("r"),
        ]
        for call in calls:
            with pytest.raises(StateBackendError):
                await call
    finally:
        await log.close()
        await dead.close()
