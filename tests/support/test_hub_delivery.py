"""The room hub in one process, in-process and on the real Redis: every sink gets each offset
above its ``after`` once and in order, from the reader, the catch-up or a local delivery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from service.backends import Backends
from service.support.hub import RoomHub
from service.support.roomlog import RoomEntry, RoomLog
from service.support.roomlog_memory import MemoryRoomLog
from service.support.roomlog_redis import RedisRoomLog


def fast_hub(log: RoomLog, *, batch: int = 500) -> RoomHub:
    """Short turns so that tests wait little; behaviour does not depend on them."""
    return RoomHub(log, block=0.05, batch=batch, check_every=0.1, backoff=0.02, backoff_cap=0.2)


@dataclass
class Collector:
    """A sink that records what it is given, and the resets it is told."""

    entries: list[RoomEntry] = field(default_factory=list)
    resets: list[tuple[str, int]] = field(default_factory=list)
    #: What was delivered after each reset (index into ``entries``).
    reset_at: list[int] = field(default_factory=list)

    def __call__(self, entry: RoomEntry) -> None:
        self.entries.append(entry)

    def on_reset(self, epoch: str, last: int) -> None:
        self.resets.append((epoch, last))
        self.reset_at.append(len(self.entries))

    @property
    def offsets(self) -> list[int]:
        return [e.offset for e in self.entries]


async def wait_until(condition: Callable[[], bool], *, limit: float = 20.0) -> None:
    """Wait for a state the hub reaches by itself; ``limit`` only turns a hang into a failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the expected state was not reached")
        await asyncio.sleep(0.01)


def payload(i: int) -> bytes:
    return b'{"n":%d}' % i


@pytest.fixture
async def hub(log: RoomLog) -> AsyncIterator[RoomHub]:
    made = fast_hub(log)
    await made.start()
    yield made
    await made.stop()


async def append(log: RoomLog, room: str, first: int, last: int) -> str:
    epoch = ""
    for i in range(first, last + 1):
        epoch, offset = await log.append(room, payload(i))
        assert offset == i
    return epoch


async def test_a_subscriber_gets_every_later_entry_once_in_order(
    log: RoomLog, hub: RoomHub
) -> None:
    epoch, _ = await log.epoch("r")
    sink = Collector()
    hub.subscribe("r", sink, after=0, epoch=epoch, on_reset=sink.on_reset)
    await append(log, "r", 1, 30)
    await wait_until(lambda: len(sink.entries) >= 30)
    assert sink.entries == [RoomEntry("r", i, payload(i), epoch) for i in range(1, 31)]
    assert sink.resets == [] and hub.healthy


async def test_a_new_subscription_catches_up_from_its_after(log: RoomLog, hub: RoomHub) -> None:
    epoch = await append(log, "r", 1, 10)
    early, late = Collector(), Collector()
    hub.subscribe("r", early, after=4, epoch=epoch)
    hub.subscribe("r", late, after=9)  # no epoch: the room's current one
    await wait_until(lambda: early.offsets[-1:] == [10] and late.offsets[-1:] == [10])
    await append(log, "r", 11, 13)
    await wait_until(lambda: early.offsets[-1:] == [13] and late.offsets[-1:] == [13])
    assert early.offsets == list(range(5, 14))
    assert late.offsets == list(range(10, 14))


async def test_a_catch_up_longer_than_one_batch(log: RoomLog) -> None:
    epoch = await append(log, "r", 1, 23)
    hub = fast_hub(log, batch=5)
    await hub.start()
    try:
        sink = Collector()
        hub.subscribe("r", sink, after=2, epoch=epoch)
        await wait_until(lambda: sink.offsets[-1:] == [23])
        assert sink.offsets == list(range(3, 24))
    finally:
        await hub.stop()


async def test_a_local_delivery_is_immediate_and_the_readers_copy_dropped(
    log: RoomLog, hub: RoomHub
) -> None:
    epoch, _ = await log.epoch("r")
    sink = Collector()
    hub.subscribe("r", sink, after=0, epoch=epoch)
    await append(log, "r", 1, 1)
    await wait_until(lambda: sink.offsets == [1])
    # No await between the append's return and the local delivery: the sink has it now.
    entry = await hub.publish("r", payload(2))
    assert entry == RoomEntry("r", 2, payload(2), epoch)
    assert sink.offsets == [1, 2]
    offset = (await log.append("r", payload(3)))[1]
    hub.deliver_local(RoomEntry("r", offset, payload(3)))  # no epoch: the room's
    assert sink.offsets == [1, 2, 3]
    # The reader reads offsets 2 and 3 too; once it delivered offset 4, it is past them.
    await append(log, "r", 4, 4)
    await wait_until(lambda: sink.offsets[-1:] == [4])
    assert sink.offsets == [1, 2, 3, 4]


async def test_a_local_delivery_never_skips_a_gap_nor_crosses_epochs(
    log: RoomLog, hub: RoomHub
) -> None:
    epoch = await append(log, "r", 1, 1)
    sink = Collector()
    hub.subscribe("r", sink, after=0, epoch=epoch)
    await wait_until(lambda: sink.offsets == [1])
    # Offset 3 before 2: held back, the reader delivers both in order.
    hub.deliver_local(RoomEntry("r", 3, b'{"early":true}', epoch))
    hub.deliver_local(RoomEntry("r", 2, b'{"stale":true}', "another-epoch"))
    assert sink.offsets == [1]
    await append(log, "r", 2, 3)
    await wait_until(lambda: sink.offsets[-1:] == [3])
    assert sink.entries[1:] == [RoomEntry("r", i, payload(i), epoch) for i in (2, 3)]


async def test_several_sinks_per_room_and_closing_one(log: RoomLog, hub: RoomHub) -> None:
    epoch, _ = await log.epoch("r")
    sinks = [Collector() for _ in range(3)]
    subs = [hub.subscribe("r", s, after=0, epoch=epoch) for s in sinks]
    await append(log, "r", 1, 5)
    await wait_until(lambda: all(s.offsets[-1:] == [5] for s in sinks))
    subs[1].close()
    subs[1].close()  # idempotent
    for i in range(6, 9):
        await hub.publish("r", payload(i))
    await wait_until(lambda: sinks[0].offsets[-1:] == [8] and sinks[2].offsets[-1:] == [8])
    assert sinks[0].offsets == sinks[2].offsets == list(range(1, 9))
    assert sinks[1].offsets == list(range(1, 6))


async def test_rooms_are_delivered_independently(log: RoomLog, hub: RoomHub) -> None:
    sinks = {room: Collector() for room in ("a", "b", "c")}
    for room, sink in sinks.items():
        hub.subscribe(room, sink, after=0)
    for i in range(1, 6):
        for room in sinks:
            await log.append(room, payload(i))
    await wait_until(lambda: all(s.offsets[-1:] == [5] for s in sinks.values()))
    for room, sink in sinks.items():
        assert [(e.room, e.offset) for e in sink.entries] == [(room, i) for i in range(1, 6)]


async def test_a_new_epoch_resets_the_sink_which_then_continues(log: RoomLog, hub: RoomHub) -> None:
    old = await append(log, "r", 1, 3)
    sink = Collector()
    hub.subscribe("r", sink, after=0, epoch=old, on_reset=sink.on_reset)
    await wait_until(lambda: sink.offsets[-1:] == [3])
    await log.drop("r")
    new = await append(log, "r", 1, 2)
    await wait_until(lambda: len(sink.resets) == 1)
    [(epoch, last)] = sink.resets
    assert epoch == new != old and 0 <= last <= 2
    await append(log, "r", 3, 4)
    await wait_until(lambda: sink.offsets[-1:] == [4])
    # Before the reset the old epoch's 1..3; after it, what follows the offset it was told.
    assert sink.offsets[: sink.reset_at[0]] == [1, 2, 3]
    assert sink.entries[sink.reset_at[0] :] == [
        RoomEntry("r", i, payload(i), new) for i in range(last + 1, 5)
    ]
    assert len(sink.resets) == 1


async def test_a_subscription_with_a_gone_epoch_or_offset_is_reset(
    log: RoomLog, hub: RoomHub
) -> None:
    epoch = await append(log, "r", 1, 3)
    stale, ahead = Collector(), Collector()
    hub.subscribe("r", stale, after=2, epoch="0000000000000000", on_reset=stale.on_reset)
    hub.subscribe("r", ahead, after=7, epoch=epoch, on_reset=ahead.on_reset)
    await wait_until(lambda: stale.resets != [] and ahead.resets != [])
    assert stale.resets == ahead.resets == [(epoch, 3)]
    await hub.publish("r", payload(4))
    await wait_until(lambda: stale.offsets == [4] and ahead.offsets == [4])


async def test_a_gap_trimmed_away_resets_instead_of_skipping(backends: Backends) -> None:
    if backends.kind == "redis":
        log: RoomLog = RedisRoomLog(backends, maxlen=5)
    else:
        assert backends.keyspace is not None
        log = MemoryRoomLog(backends.keyspace, maxlen=5)
    hub = fast_hub(log)
    await hub.start()
    try:
        epoch = await append(log, "r", 1, 250)
        sink = Collector()
        hub.subscribe("r", sink, after=0, epoch=epoch, on_reset=sink.on_reset)
        await wait_until(lambda: sink.resets != [])
        assert sink.resets == [(epoch, 250)] and sink.entries == []
        await hub.publish("r", payload(251))
        await wait_until(lambda: sink.offsets == [251])
    finally:
        await hub.stop()
        await log.close()


async def test_a_failing_sink_does_not_stop_the_others(log: RoomLog, hub: RoomHub) -> None:
    def broken(entry: RoomEntry) -> None:
        raise RuntimeError("sink bug")

    sink = Collector()
    hub.subscribe("r", broken, after=0)
    hub.subscribe("r", sink, after=0)
    await append(log, "r", 1, 3)
    await wait_until(lambda: sink.offsets[-1:] == [3])
    assert sink.offsets == [1, 2, 3] and hub.healthy


async def test_a_sink_may_close_and_subscribe_from_its_callback(log: RoomLog, hub: RoomHub) -> None:
    later = Collector()
    first: list[int] = []

    def once(entry: RoomEntry) -> None:
        first.append(entry.offset)
        sub.close()
        hub.subscribe("r", later, after=entry.offset)

    sub = hub.subscribe("r", once, after=0)
    await append(log, "r", 1, 4)
    await wait_until(lambda: later.offsets[-1:] == [4])
    assert first == [1] and later.offsets == [2, 3, 4]


async def test_start_and_stop_are_clean_and_idempotent(log: RoomLog) -> None:
    hub = fast_hub(log)
    await hub.start()
    await hub.start()
    sink = Collector()
    hub.subscribe("r", sink, after=0)
    await append(log, "r", 1, 1)
    await wait_until(lambda: sink.offsets == [1])
    await hub.stop()
    await hub.stop()
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith(RoomHub.name)]
    assert left == []
    # Subscribing to a stopped hub is harmless; it delivers once started again.
    await append(log, "r", 2, 2)
    await hub.start()
    try:
        await wait_until(lambda: sink.offsets == [1, 2])
    finally:
        await hub.stop()


async def test_bad_arguments_are_refused(log: RoomLog, hub: RoomHub) -> None:
    with pytest.raises(ValueError):
        hub.subscribe("r", Collector(), after=-1)
    with pytest.raises(ValueError):
        RoomHub(log, block=0)


async def test_the_periodic_check_reads_a_few_rooms_in_turn_and_finds_every_new_epoch(
    log: RoomLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more rooms than one check reads, each check reads the next ones: a room whose log
    started over with nothing above the sinks' place (only the heads show it) is still found."""
    rooms = [f"r{n}" for n in range(7)]
    sinks = {room: Collector() for room in rooms}
    hub = RoomHub(log, block=0.05, check_every=0.05, heads_per_check=2)
    read: list[int] = []
    heads = log.heads

    async def counted(names: Any) -> dict[str, tuple[str, int]]:
        read.append(len(names))
        return await heads(names)

    monkeypatch.setattr(log, "heads", counted)
    await hub.start()
    try:
        for room in rooms:
            old = await append(log, room, 1, 3)
            hub.subscribe(room, sinks[room], after=0, epoch=old, on_reset=sinks[room].on_reset)
        await wait_until(lambda: all(s.offsets[-1:] == [3] for s in sinks.values()))
        # Two rooms' logs start over, each below the sinks' place: no entry shows it.
        for room in ("r1", "r5"):
            await log.drop(room)
            await append(log, room, 1, 1)
        await wait_until(lambda: len(sinks["r1"].resets) == 1 and len(sinks["r5"].resets) == 1)
        assert all(not sinks[room].resets for room in rooms if room not in ("r1", "r5"))
        # After the first (full) check, each reads at most two rooms.
        assert read[0] >= 1 and max(read[1:]) <= 2
    finally:
        await hub.stop()
