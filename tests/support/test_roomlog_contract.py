"""Room logs keep one contract in-process and on the real Redis: dense offsets per epoch, exact
replays or ``recovered: False``, and reads across rooms that wait for news."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping

import pytest

from service.backends import Backends
from service.backends.memory import MemoryKeyspace
from service.support.roomlog import Replay, RoomEntry, RoomLog
from service.support.roomlog_memory import MemoryRoomLog
from service.support.roomlog_redis import RedisRoomLog
from service.support.stores import create_room_log
from tests.support.conftest import as_processes


@pytest.fixture
async def peers(request: pytest.FixtureRequest, backends: Backends) -> AsyncIterator[list[RoomLog]]:
    """Three logs as three processes would hold them (``as_processes``)."""
    async with as_processes(request, backends, 3) as each:
        logs = [create_room_log(b) for b in each]
        yield logs
        for log in logs:
            await log.close()


def small_log(backends: Backends, *, maxlen: int) -> RoomLog:
    if backends.kind == "redis":
        return RedisRoomLog(backends, maxlen=maxlen)
    assert backends.keyspace is not None
    return MemoryRoomLog(backends.keyspace, maxlen=maxlen)


def payload(i: int) -> bytes:
    return b'{"n":%d}' % i


async def read_all(log: RoomLog, room: str, epoch: str, offset: int, limit: int) -> list[RoomEntry]:
    """Follow ``more`` until the end, as a reconnecting client does."""
    found: list[RoomEntry] = []
    while True:
        replay = await log.since(room, epoch, offset, limit=limit)
        assert replay.recovered
        found.extend(replay.entries)
        if not replay.more:
            return found
        offset = replay.entries[-1].offset


async def test_the_factory_follows_the_backend_kind(backends: Backends) -> None:
    made = create_room_log(backends)
    try:
        assert made.kind == backends.kind
        assert isinstance(made, MemoryRoomLog if backends.kind == "memory" else RedisRoomLog)
    finally:
        await made.close()


async def test_offsets_count_from_one_in_one_epoch(log: RoomLog) -> None:
    epoch, last = await log.epoch("r")
    assert (len(epoch), last) == (16, 0)
    assert await log.epoch("r") == (epoch, 0)  # asking again creates nothing new
    stored = [await log.append("r", payload(i)) for i in range(1, 6)]
    assert stored == [(epoch, i) for i in range(1, 6)]
    assert await log.epoch("r") == (epoch, 5)
    # Rooms are independent.
    assert (await log.append("other", payload(0)))[1] == 1
    assert (await log.epoch("other"))[0] != epoch


async def test_concurrent_appends_from_separate_processes_get_dense_offsets(
    peers: list[RoomLog],
) -> None:
    per_peer = 40

    async def produce(index: int, log: RoomLog) -> list[tuple[str, int, bytes]]:
        done = []
        for i in range(per_peer):
            body = payload(index * 1000 + i)
            epoch, offset = await log.append("busy", body)
            done.append((epoch, offset, body))
        return done

    results = await asyncio.gather(*(produce(i, log) for i, log in enumerate(peers)))
    stored = [item for part in results for item in part]
    epochs = {epoch for epoch, _, _ in stored}
    assert len(epochs) == 1
    epoch = epochs.pop()
    total = per_peer * len(peers)
    assert sorted(offset for _, offset, _ in stored) == list(range(1, total + 1))
    # Each producer's own appends got increasing offsets (its calls were sequential).
    for part in results:
        offsets = [offset for _, offset, _ in part]
        assert offsets == sorted(offsets)
    # Every process replays the same log: each offset holds the payload its append was told.
    by_offset = {offset: body for _, offset, body in stored}
    for log in peers:
        entries = await read_all(log, "busy", epoch, 0, limit=500)
        assert [(e.offset, e.payload, e.epoch) for e in entries] == [
            (o, by_offset[o], epoch) for o in range(1, total + 1)
        ]


async def test_since_returns_exactly_what_was_missed(log: RoomLog) -> None:
    for i in range(1, 11):
        epoch, _ = await log.append("r", payload(i))
    replay = await log.since("r", epoch, 6)
    assert replay == Replay(
        epoch, True, [RoomEntry("r", o, payload(o), epoch) for o in range(7, 11)], False, 10
    )
    everything = await log.since("r", epoch, 0)
    assert [e.offset for e in everything.entries] == list(range(1, 11))
    assert await log.since("r", epoch, 10) == Replay(epoch, True, [], False, 10)


async def test_since_pages_with_more(log: RoomLog) -> None:
    for i in range(1, 8):
        epoch, _ = await log.append("r", payload(i))
    first = await log.since("r", epoch, 0, limit=3)
    assert ([e.offset for e in first.entries], first.more, first.last_offset) == (
        [1, 2, 3],
        True,
        7,
    )
    second = await log.since("r", epoch, 3, limit=3)
    assert ([e.offset for e in second.entries], second.more) == ([4, 5, 6], True)
    third = await log.since("r", epoch, 6, limit=3)
    assert ([e.offset for e in third.entries], third.more) == ([7], False)
    exact = await log.since("r", epoch, 4, limit=3)
    assert ([e.offset for e in exact.entries], exact.more) == ([5, 6, 7], False)
    assert [e.offset for e in await read_all(log, "r", epoch, 2, limit=2)] == [3, 4, 5, 6, 7]


async def test_since_refuses_another_epoch_or_an_offset_never_reached(log: RoomLog) -> None:
    for i in range(1, 4):
        epoch, _ = await log.append("r", payload(i))
    assert await log.since("r", "0123456789abcdef", 1) == Replay(epoch, False, [], False, 3)
    assert await log.since("r", "", 0) == Replay(epoch, False, [], False, 3)
    assert await log.since("r", epoch, 4) == Replay(epoch, False, [], False, 3)
    assert await log.since("r", epoch, 2**70) == Replay(epoch, False, [], False, 3)
    with pytest.raises(ValueError):
        await log.since("r", epoch, -1)
    with pytest.raises(ValueError):
        await log.since("r", epoch, 0, limit=0)


async def test_a_room_without_a_log_gets_an_epoch_on_first_sight(log: RoomLog) -> None:
    replay = await log.since("fresh", "old-epoch", 5)
    assert (replay.recovered, replay.last_offset, replay.entries) == (False, 0, [])
    assert await log.epoch("fresh") == (replay.epoch, 0)
    assert await log.since("fresh", replay.epoch, 0) == Replay(replay.epoch, True, [], False, 0)
    assert await log.append("fresh", payload(1)) == (replay.epoch, 1)


async def test_a_dropped_room_starts_a_new_epoch(log: RoomLog) -> None:
    for i in range(1, 4):
        old, _ = await log.append("r", payload(i))
    await log.drop("r")
    assert await log.heads(["r"]) == {}
    replay = await log.since("r", old, 3)
    assert not replay.recovered and replay.epoch != old and replay.last_offset == 0
    assert await log.append("r", payload(9)) == (replay.epoch, 1)
    assert [e.payload for e in (await log.since("r", replay.epoch, 0)).entries] == [payload(9)]
    # Dropped and appended again without anyone asking: also a new epoch.
    await log.drop("r")
    again, offset = await log.append("r", payload(10))
    assert offset == 1 and again not in (old, replay.epoch)


async def test_a_trimmed_gap_is_not_recovered(backends: Backends) -> None:
    log = small_log(backends, maxlen=20)
    try:
        total = 350
        for i in range(1, total + 1):
            epoch, _ = await log.append("r", payload(i))
        # Recovered from offset k exactly when k+1 is still kept: find the first such k.
        low, high = 0, total
        while low < high:
            mid = (low + high) // 2
            if (await log.since("r", epoch, mid)).recovered:
                high = mid
            else:
                low = mid + 1
        first_kept = low + 1
        assert first_kept > 1, "nothing was trimmed"
        kept = total - first_kept + 1
        assert kept >= 20
        if backends.kind == "memory":
            assert kept == 20
        for offset in range(max(0, low - 5), low):
            assert await log.since("r", epoch, offset) == Replay(epoch, False, [], False, total)
        entries = await read_all(log, "r", epoch, low, limit=50)
        assert [e.offset for e in entries] == list(range(first_kept, total + 1))
        assert all(e.payload == payload(e.offset) for e in entries)
    finally:
        await log.close()


async def test_read_many_reads_every_room_from_its_own_offset(log: RoomLog) -> None:
    for i in range(1, 5):
        ea, _ = await log.append("a", payload(i))
    for i in range(1, 3):
        eb, _ = await log.append("b", payload(10 + i))
    found = await log.read_many({"a": 2, "b": 0, "none": 0}, block=None)
    by_room = {
        room: [(e.offset, e.payload, e.epoch) for e in found if e.room == room] for room in "ab"
    }
    assert by_room == {
        "a": [(3, payload(3), ea), (4, payload(4), ea)],
        "b": [(1, payload(11), eb), (2, payload(12), eb)],
    }
    assert not any(e.room == "none" for e in found)
    assert await log.read_many({"a": 4, "b": 2}, block=None) == []
    assert await log.read_many({}, block=None) == []
    limited = await log.read_many({"a": 0, "b": 0}, block=None, count=1)
    assert sorted((e.room, e.offset) for e in limited) == [("a", 1), ("b", 1)]


async def test_read_many_waits_for_the_next_append(log: RoomLog) -> None:
    epoch, _ = await log.epoch("quiet")
    await log.append("other", payload(0))
    reading = asyncio.create_task(log.read_many({"quiet": 0, "other": 1}, block=0.9))
    await asyncio.sleep(0.05)
    assert not reading.done()
    await log.append("quiet", payload(1))
    # Had the read not been woken, it would have returned nothing when its block ran out.
    assert await reading == [RoomEntry("quiet", 1, payload(1), epoch)]


class LivePositions(Mapping[str, int]):
    """Positions that move while a read waits, as the hub's do when it delivers meanwhile."""

    def __init__(self, at: dict[str, int]) -> None:
        self.at = at

    def __getitem__(self, room: str) -> int:
        return self.at[room]

    def __iter__(self) -> Iterator[str]:
        return iter(self.at)

    def __len__(self) -> int:
        return len(self.at)


async def test_read_many_reads_the_positions_after_its_wait(log: RoomLog) -> None:
    """An entry its followers got otherwise while the read waited (this process's own send,
    delivered by its sender) is not read again; one past the moved position is."""
    epoch, _ = await log.epoch("live")
    positions = LivePositions({"live": 0})
    reading = asyncio.create_task(log.read_many(positions, block=0.3))
    await asyncio.sleep(0.05)
    positions.at["live"] = 1
    assert await log.append("live", payload(1)) == (epoch, 1)
    assert await reading == []
    await log.append("live", payload(2))
    assert await log.read_many(positions, block=0.9) == [RoomEntry("live", 2, payload(2), epoch)]


async def test_read_many_sees_offsets_of_a_new_epoch_with_their_epoch(log: RoomLog) -> None:
    for i in range(1, 3):
        old, _ = await log.append("r", payload(i))
    await log.drop("r")
    new, _ = await log.append("r", payload(7))
    # The reader's position of the old epoch hides the new epoch's first offsets; the entry's
    # epoch is what tells a reader that the log changed under it.
    assert await log.read_many({"r": 2}, block=None) == []
    found = await log.read_many({"r": 0}, block=None)
    assert found == [RoomEntry("r", 1, payload(7), new)] and new != old


async def test_heads_tell_epoch_and_last_offset_without_creating(log: RoomLog) -> None:
    epoch, _ = await log.append("a", payload(1))
    await log.append("a", payload(2))
    assert await log.heads(["a", "b"]) == {"a": (epoch, 2)}
    assert await log.heads([]) == {}
    assert await log.heads(["b"]) == {}  # still nothing


async def test_an_idle_room_is_forgotten_after_the_retention_period() -> None:
    now = [1000.0]
    log = MemoryRoomLog(MemoryKeyspace("retention", clock=lambda: now[0]), retention=10.0)
    epoch, _ = await log.append("r", payload(1))
    now[0] += 6
    await log.append("r", payload(2))  # refreshes the retention
    now[0] += 6
    assert (await log.since("r", epoch, 0)).recovered
    now[0] += 11
    replay = await log.since("r", epoch, 2)
    assert (replay.recovered, replay.last_offset) == (False, 0) and replay.epoch != epoch
