"""Two hubs as two processes would hold them: each with its own ``Backends`` (own connections)
over one Redis namespace. What either appends reaches the sinks of both, once and in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from service.backends import Backends, redis_backends
from service.support.hub import RoomHub
from service.support.roomlog import RoomEntry, RoomLog
from service.support.stores import create_room_log
from tests.support.test_hub_delivery import Collector, fast_hub, payload, wait_until

pytestmark = pytest.mark.redis


@dataclass
class Process:
    backends: Backends
    log: RoomLog
    hub: RoomHub


@pytest.fixture
async def processes(redis_url: str, redis_namespace: str) -> AsyncIterator[list[Process]]:
    made = []
    for _ in range(2):
        backends = redis_backends(redis_url, redis_namespace)
        log = create_room_log(backends)
        made.append(Process(backends, log, fast_hub(log)))
    for p in made:
        await p.hub.start()
    yield made
    for p in made:
        await p.hub.stop()
        await p.log.close()
        await p.backends.close()


async def test_appends_on_one_process_reach_the_others_sinks(processes: list[Process]) -> None:
    a, b = processes
    epoch, _ = await a.log.epoch("r")
    there = Collector()
    b.hub.subscribe("r", there, after=0, epoch=epoch, on_reset=there.on_reset)
    for i in range(1, 26):
        # Delivered locally on A (no sink there) and read by B's reader.
        await a.hub.publish("r", payload(i))
    await wait_until(lambda: there.offsets[-1:] == [25])
    assert there.entries == [RoomEntry("r", i, payload(i), epoch) for i in range(1, 26)]
    assert there.resets == []


async def test_both_processes_appending_at_once(processes: list[Process]) -> None:
    epoch, _ = await processes[0].log.epoch("r")
    sinks = [Collector() for _ in range(4)]
    # Two sinks per process (one person on two devices, or the admin and the customer).
    for i, sink in enumerate(sinks):
        processes[i % 2].hub.subscribe("r", sink, after=0, epoch=epoch, on_reset=sink.on_reset)
    per_process = 40

    async def chat(p: Process, tag: int) -> list[RoomEntry]:
        return [await p.hub.publish("r", payload(tag * 1000 + i)) for i in range(per_process)]

    sent = await asyncio.gather(*(chat(p, t) for t, p in enumerate(processes)))
    total = 2 * per_process
    assert sorted(e.offset for part in sent for e in part) == list(range(1, total + 1))
    stored = sorted((e for part in sent for e in part), key=lambda e: e.offset)
    await wait_until(lambda: all(s.offsets[-1:] == [total] for s in sinks))
    for sink in sinks:
        assert sink.entries == stored and sink.resets == []


async def test_a_subscriber_joining_late_on_the_other_process_catches_up(
    processes: list[Process],
) -> None:
    a, b = processes
    for i in range(1, 11):
        epoch = (await a.hub.publish("r", payload(i))).epoch
    late = Collector()
    b.hub.subscribe("r", late, after=3, epoch=epoch)
    publishing = asyncio.gather(*(a.hub.publish("r", payload(i)) for i in range(11, 21)))
    await publishing
    await wait_until(lambda: late.offsets[-1:] == [20])
    assert late.offsets == list(range(4, 21))


async def test_a_room_dropped_by_one_process_resets_the_others_sinks(
    processes: list[Process],
) -> None:
    a, b = processes
    old = (await a.hub.publish("r", payload(1))).epoch
    sink = Collector()
    b.hub.subscribe("r", sink, after=0, epoch=old, on_reset=sink.on_reset)
    await wait_until(lambda: sink.offsets == [1])
    await a.log.drop("r")
    new = (await a.hub.publish("r", payload(2))).epoch
    await wait_until(lambda: sink.resets != [])
    [(epoch, last)] = sink.resets
    assert epoch == new != old and last in (0, 1)
    await a.hub.publish("r", payload(3))
    await wait_until(lambda: sink.offsets[-1:] == [2])
    assert sink.entries[sink.reset_at[0] :] == [
        RoomEntry("r", o, payload(o + 1), new) for o in range(last + 1, 3)
    ]
