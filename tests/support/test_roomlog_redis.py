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


def redis_millis(admin: sync_redis.Redis) -> int:
    seconds, micros = admin.time()
    return int(seconds) * 1000 + int(micros) // 1000


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
    fields: Any = admin.hgetall(head)
    assert (fields[b"epoch"], fields[b"offset"]) == (epoch.encode(), b"3")
    assert abs(int(fields[b"kept"]) - redis_millis(admin)) < 60_000
    # The retention (100 s) plus its slack (1%).
    for key in (stream, head):
        assert 100_000 < admin.pttl(key) <= 101_000


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


@pytest.mark.parametrize("lost", ["head", "stream", "both"])
async def test_a_lost_key_starts_a_new_epoch_for_a_clients_message(
    log: RedisRoomLog, backends: Backends, admin: sync_redis.Redis, lost: str
) -> None:
    # The send script sees a lost stream by its XADD (NOMKSTREAM), not by an EXISTS.
    for n in range(1, 4):
        old, _, _ = await log.append_once("r", b"{}", marker=f"cid:a:{n}", marker_ttl=60)
    head = backends.key(room_key("r", SUPPORT_ROOM_HEAD))
    stream = backends.key(room_key("r", SUPPORT_ROOM_STREAM))
    admin.delete(*{"head": [head], "stream": [stream], "both": [head, stream]}[lost])
    new, offset, duplicate = await log.append_once("r", b"5", marker="cid:a:5", marker_ttl=60)
    assert new != old and (offset, duplicate) == (1, False)
    assert (await log.since("r", new, 0)).entries == [RoomEntry("r", 1, b"5", new)]
    # The marker holds the message's place in the new epoch.
    assert await log.append_once("r", b"5", marker="cid:a:5", marker_ttl=60) == (new, 1, True)
    for key in (head, stream):
        assert admin.pttl(key) > 0


async def test_a_new_stream_gets_the_ttl_whatever_its_head_says(
    log: RedisRoomLog, backends: Backends, admin: sync_redis.Redis
) -> None:
    head = backends.key(room_key("r", SUPPORT_ROOM_HEAD))
    stream = backends.key(room_key("r", SUPPORT_ROOM_STREAM))
    await log.append_once("r", b"1", marker="cid:b:1", marker_ttl=60)
    # The stream lost, a replay starts the new epoch (offset 0): the head keeps a recent
    # `kept`, and the first message of the new stream must still give it a TTL.
    admin.delete(stream)
    epoch = (await log.since("r", "gone", 0)).epoch
    assert await log.append_once("r", b"2", marker="cid:b:2", marker_ttl=60) == (epoch, 1, False)
    assert admin.pttl(stream) > 0 and admin.pttl(head) > 0


async def test_the_ttl_is_renewed_once_the_slack_has_passed(
    backends: Backends, admin: sync_redis.Redis
) -> None:
    # Retention 1,000 s: a slack of 10 s, which the steps below stay well within.
    log = RedisRoomLog(backends, retention=1000.0)
    head = backends.key(room_key("r", SUPPORT_ROOM_HEAD))
    stream = backends.key(room_key("r", SUPPORT_ROOM_STREAM))
    try:
        await log.append_once("r", b"1", marker="cid:c:1", marker_ttl=60)
        assert all(1_000_000 < admin.pttl(key) <= 1_010_000 for key in (head, stream))
        kept = int(admin.hget(head, "kept") or 0)
        for key in (head, stream):  # as if most of the retention had passed
            admin.pexpire(key, 500_000)
        await log.append_once("r", b"2", marker="cid:c:2", marker_ttl=60)
        assert all(admin.pttl(key) <= 500_000 for key in (head, stream))
        admin.hset(head, "kept", kept - 10_001)  # the slack has passed
        await log.append_once("r", b"3", marker="cid:c:3", marker_ttl=60)
        assert all(1_000_000 < admin.pttl(key) <= 1_010_000 for key in (head, stream))
        assert int(admin.hget(head, "kept") or 0) >= kept
        admin.hset(head, "kept", kept + 3_600_000)  # a clock set back an hour since
        for key in (head, stream):
            admin.pexpire(key, 500_000)
        await log.append_once("r", b"4", marker="cid:c:4", marker_ttl=60)
        assert all(1_000_000 < admin.pttl(key) <= 1_010_000 for key in (head, stream))
    finally:
        await log.close()


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
