"""The history feed keeps one contract in-process and on the real Redis (one server and a
cluster): the room log adds a stored message's record in the same step, each record goes to one
writer, and what a writer took and never finished is offered again, as retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from service.backends import Backends
from service.backends.keys import SUPPORT_HISTORY_GROUP, SUPPORT_HISTORY_STREAM
from service.support.historyfeed import FedRecord, HistoryFeed
from service.support.historyfeed_memory import MemoryHistoryFeed
from service.support.historyfeed_redis import RedisHistoryFeed
from service.support.roomlog import RoomLog
from service.support.stores import create_history_feed
from tests.support.conftest import as_processes

CLAIM_IDLE = 0.3
#: No take-over within a test, however slow the machine: for tests about who gets a record.
PATIENT_CLAIM_IDLE = 60.0


def writer_feed(backends: Backends, claim_idle: float = CLAIM_IDLE) -> HistoryFeed:
    if backends.kind == "redis":
        return RedisHistoryFeed(backends, claim_idle=claim_idle, claim_every=0.05)
    assert backends.keyspace is not None
    return MemoryHistoryFeed(backends.keyspace, claim_idle=claim_idle)


@asynccontextmanager
async def two_writers(
    request: pytest.FixtureRequest, backends: Backends, claim_idle: float
) -> AsyncIterator[list[HistoryFeed]]:
    """Two writers' feeds as two processes hold them (``as_processes``)."""
    async with as_processes(request, backends, 2) as each:
        feeds = [writer_feed(b, claim_idle) for b in each]
        try:
            yield feeds
        finally:
            for feed in feeds:
                await feed.close()


@pytest.fixture
async def writers(
    request: pytest.FixtureRequest, backends: Backends
) -> AsyncIterator[list[HistoryFeed]]:
    """Two writers that take over what the other left for ``CLAIM_IDLE``."""
    async with two_writers(request, backends, CLAIM_IDLE) as feeds:
        yield feeds


@pytest.fixture
async def patient_writers(
    request: pytest.FixtureRequest, backends: Backends
) -> AsyncIterator[list[HistoryFeed]]:
    """Two writers that take nothing over while a test runs (a loaded machine once took more
    than ``CLAIM_IDLE`` between one writer's take and the next's)."""
    async with two_writers(request, backends, PATIENT_CLAIM_IDLE) as feeds:
        yield feeds


async def send(log: RoomLog, room: str, n: int, *, record: bool = True) -> bool:
    """A client's message ``n`` (client id ``n``); whether it was a duplicate."""
    _, _, duplicate = await log.append_once(
        room,
        b'{"n":%d}' % n,
        marker=f"cid:{room}:{n}",
        marker_ttl=60,
        record=b"rec-%d" % n if record else None,
    )
    return duplicate


async def take_all(feed: HistoryFeed, count: int = 100) -> list[FedRecord]:
    found: list[FedRecord] = []
    while batch := await feed.take(count, block=0):
        found += batch
    return found


async def test_the_factory_follows_the_backend_kind(backends: Backends) -> None:
    feed = create_history_feed(backends)
    try:
        assert feed.kind == backends.kind
        kind = MemoryHistoryFeed if backends.kind == "memory" else RedisHistoryFeed
        assert isinstance(feed, kind)
        assert await feed.take(10, block=0) == []
        assert await feed.backlog() == 0
    finally:
        await feed.close()


async def test_stored_messages_add_their_records_once_in_order(
    log: RoomLog, writers: list[HistoryFeed]
) -> None:
    assert [await send(log, "r1", n) for n in (1, 2, 3)] == [False, False, False]
    assert await send(log, "r1", 2) is True  # a resend: stored before, no second record
    assert await send(log, "r2", 4, record=False) is False  # a message without a record
    # Many at once (one script call for the turn on one Redis server), across rooms.
    await asyncio.gather(*(send(log, f"m{n % 3}", n) for n in range(10, 30)))
    feed, _ = writers
    assert await feed.backlog() == 23
    taken = await take_all(feed, count=7)
    records = [r.record for r in taken]
    assert records[:3] == [b"rec-1", b"rec-2", b"rec-3"]
    assert sorted(records[3:]) == sorted(b"rec-%d" % n for n in range(10, 30))
    # Each room's records in its messages' order.
    for room in range(3):
        mine = [int(r[4:]) for r in records[3:] if int(r[4:]) % 3 == room]
        assert mine == sorted(mine)
    assert not any(r.retried for r in taken)
    assert len({r.id for r in taken}) == 23


async def test_each_record_goes_to_one_writer_and_done_ones_are_gone(
    log: RoomLog, patient_writers: list[HistoryFeed], writers: list[HistoryFeed]
) -> None:
    for n in range(1, 11):
        await send(log, "r", n)
    first, second = patient_writers
    a = await first.take(4, block=0)
    b = await take_all(second)
    assert len(a) == 4 and len(b) == 6
    assert {r.record for r in a}.isdisjoint({r.record for r in b})
    assert await first.backlog() == 10  # taken, not done
    await first.done([r.id for r in a])
    await second.done([r.id for r in b])
    assert await first.backlog() == 0
    # Writers that take over what waits longer than CLAIM_IDLE find nothing: done is gone.
    await asyncio.sleep(CLAIM_IDLE + 0.1)
    assert await take_all(writers[0]) == [] and await take_all(writers[1]) == []


async def test_what_a_writer_never_finished_is_offered_again_as_retried(
    log: RoomLog, writers: list[HistoryFeed]
) -> None:
    for n in range(1, 6):
        await send(log, "r", n)
    gone, alive = writers
    taken = await gone.take(3, block=0)  # this writer dies with them
    rest = await take_all(alive)
    await alive.done([r.id for r in rest])
    assert await take_all(alive) == []  # not yet: they may still be written
    await asyncio.sleep(CLAIM_IDLE + 0.15)
    again = await take_all(alive)
    assert [r.record for r in again] == [r.record for r in taken]
    assert all(r.retried for r in again)
    await alive.done([r.id for r in again])
    assert await alive.backlog() == 0


async def test_a_blocked_take_wakes_on_a_stored_message(
    log: RoomLog, writers: list[HistoryFeed]
) -> None:
    feed, _ = writers
    waiting = asyncio.create_task(feed.take(10, block=30))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await send(log, "r", 1)
    found = await asyncio.wait_for(waiting, 10)  # long before its own 30 s block ends
    assert [r.record for r in found] == [b"rec-1"]
    empty = await feed.take(10, block=0.05)
    assert empty == []


async def test_bad_arguments_are_refused(writers: list[HistoryFeed]) -> None:
    with pytest.raises(ValueError):
        await writers[0].take(0, block=0)


async def test_redis_losing_the_stream_and_group_makes_them_again(
    backends: Backends, log: RoomLog, writers: list[HistoryFeed]
) -> None:
    if backends.kind == "memory":
        pytest.skip("Redis's own state")
    feed, _ = writers
    await send(log, "r", 1)
    [first] = await feed.take(10, block=0)
    await feed.done([first.id])
    assert backends.redis is not None
    await backends.redis.delete(backends.key(SUPPORT_HISTORY_STREAM))
    await send(log, "r", 2)
    assert [r.record for r in await feed.take(10, block=0)] == [b"rec-2"]


async def test_a_redis_writer_that_holds_nothing_leaves_the_group_when_closed(
    backends: Backends, log: RoomLog
) -> None:
    if backends.kind == "memory":
        pytest.skip("Redis's own state")
    assert backends.redis is not None
    stream = backends.key(SUPPORT_HISTORY_STREAM)
    holder, idle = writer_feed(backends), writer_feed(backends)
    await send(log, "r", 1)
    assert len(await holder.take(10, block=0)) == 1  # and dies holding it
    assert await idle.take(10, block=0) == []
    await holder.close()
    await idle.close()
    consumers = await backends.redis.xinfo_consumers(stream, SUPPORT_HISTORY_GROUP)
    assert [c["pending"] for c in consumers] == [1]
