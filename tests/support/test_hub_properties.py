"""Property: whatever the interleaving of appends on either of two hubs' logs, local deliveries,
subscriptions and closes, every sink gets exactly the offsets above its ``after``, in order,
once (a closed one: a gapless prefix of them). In-process (two logs over one keyspace) and on
the real Redis (two ``Backends`` over one namespace, as two processes)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import redis as sync_redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.backends import Backends, memory_backends, redis_backends
from service.backends.keys import SUPPORT_ROOM_HEAD, SUPPORT_ROOM_STREAM, room_key
from service.support.hub import RoomHub, Subscription
from service.support.roomlog import RoomEntry
from service.support.stores import create_room_log
from tests.support.test_hub_delivery import Collector, payload, wait_until

ROOMS = ("a", "b")

append = st.tuples(st.just("append"), st.integers(0, 1), st.sampled_from(ROOMS), st.booleans())
subscribe = st.tuples(
    st.just("subscribe"),
    st.integers(0, 1),
    st.sampled_from(ROOMS),
    st.floats(0, 1),
    st.booleans(),
)
close = st.tuples(st.just("close"), st.integers(0, 50))
pause = st.tuples(st.just("pause"), st.integers(0, 3))
steps = st.lists(st.one_of(append, append, subscribe, close, pause), max_size=40)


@dataclass
class Watched:
    sub: Subscription
    sink: Collector
    after: int
    #: The room's last offset when it was closed (None while open).
    closed_at: int | None = None


class Rig:
    """Two room logs (two Redis clients, or one in-process backend) and a hub on each."""

    def __init__(self, kind: str, url: str | None, *, check_every: float) -> None:
        self.url = url
        self.namespace = f"kprop-{uuid.uuid4().hex[:12]}"
        if kind == "redis":
            assert url is not None
            self.backends: list[Backends] = [redis_backends(url, self.namespace) for _ in range(2)]
            self.logs = [create_room_log(b) for b in self.backends]
        else:
            self.backends = [memory_backends(self.namespace)]
            self.logs = [create_room_log(self.backends[0]) for _ in range(2)]
        self.hubs = [RoomHub(log, block=0.02, check_every=check_every) for log in self.logs]

    async def close(self) -> None:
        for hub in self.hubs:
            await hub.stop()
        for log in self.logs:
            await log.close()
        for b in self.backends:
            await b.close()
        if self.url is not None:
            client = sync_redis.Redis.from_url(self.url)
            try:
                client.delete(
                    *(
                        f"{self.namespace}:{room_key(room, p)}"
                        for p in (SUPPORT_ROOM_STREAM, SUPPORT_ROOM_HEAD)
                        for room in ROOMS
                    )
                )
            finally:
                client.close()


async def scenario(kind: str, url: str | None, ops: list[tuple[Any, ...]]) -> None:
    rig = Rig(kind, url, check_every=0.1)
    logs, hubs = rig.logs, rig.hubs
    last = dict.fromkeys(ROOMS, 0)
    epochs: dict[str, str] = {}
    watched: list[Watched] = []
    for hub in hubs:
        await hub.start()
    try:
        for op in ops:
            if op[0] == "append":
                _, h, room, local = op
                epoch, offset = await logs[h].append(room, payload(last[room] + 1))
                assert epochs.setdefault(room, epoch) == epoch
                assert offset == last[room] + 1
                last[room] = offset
                if local:
                    hubs[h].deliver_local(RoomEntry(room, offset, payload(offset), epoch))
            elif op[0] == "subscribe":
                _, h, room, share, with_epoch = op
                after = int(share * last[room])
                known = epochs.get(room) if with_epoch else None
                sink = Collector()
                sub = hubs[h].subscribe(
                    room, sink, after=after, epoch=known, on_reset=sink.on_reset
                )
                watched.append(Watched(sub, sink, after))
            elif op[0] == "close":
                open_ones = [w for w in watched if w.closed_at is None]
                if open_ones:
                    chosen = open_ones[int(op[1]) % len(open_ones)]
                    chosen.sub.close()
                    chosen.closed_at = last[chosen.sub.room]
            else:
                for _ in range(int(op[1])):
                    await asyncio.sleep(0)

        def settled() -> bool:
            return all(
                w.closed_at is not None
                or w.after >= last[w.sub.room]
                or w.sink.offsets[-1:] == [last[w.sub.room]]
                for w in watched
            )

        await wait_until(settled)
        for w in watched:
            room = w.sub.room
            assert w.sink.resets == []
            assert all(e.room == room and e.epoch == epochs[room] for e in w.sink.entries)
            assert all(e.payload == payload(e.offset) for e in w.sink.entries)
            if w.closed_at is None:
                assert w.sink.offsets == list(range(w.after + 1, last[room] + 1))
            else:
                got = w.sink.offsets
                assert got == list(range(w.after + 1, w.after + 1 + len(got)))
                assert w.after + len(got) <= max(w.after, w.closed_at)
    finally:
        await rig.close()


@settings(max_examples=200, deadline=None)
@given(ops=steps)
def test_every_sink_gets_its_offsets_once_in_order_in_process(
    ops: list[tuple[Any, ...]],
) -> None:
    asyncio.run(scenario("memory", None, ops))


@pytest.mark.redis
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=steps)
def test_every_sink_gets_its_offsets_once_in_order_across_processes(
    redis_url: str, ops: list[tuple[Any, ...]]
) -> None:
    asyncio.run(scenario("redis", redis_url, ops))


# --- with rooms dropped: epochs change under the sinks -----------------------------------

drop = st.tuples(st.just("drop"), st.sampled_from(ROOMS))
steps_with_drops = st.lists(st.one_of(append, append, subscribe, close, pause, drop), max_size=40)


def check_segments(w: Watched, known: str | None) -> tuple[str | None, int]:
    """Between resets, each run of entries continues gaplessly from the offset the sink was
    last told, in one epoch; a reset names another epoch. The sink's epoch and position."""
    entries = w.sink.entries
    bounds: list[tuple[str | None, int]] = [(known, w.after), *w.sink.resets]
    cuts = [0, *w.sink.reset_at, len(entries)]
    epoch: str | None = None
    position = w.after
    for k, (told_epoch, told) in enumerate(bounds):
        if k > 0:
            assert epoch is None or told_epoch != epoch
        part = entries[cuts[k] : cuts[k + 1]]
        assert [e.offset for e in part] == list(range(told + 1, told + 1 + len(part)))
        epochs_seen = {e.epoch for e in part}
        assert len(epochs_seen) <= 1
        epoch = told_epoch or (epochs_seen.pop() if epochs_seen else None)
        assert all(e.epoch == epoch for e in part)
        assert all(e.room == w.sub.room and e.payload == payload(e.offset) for e in part)
        position = told + len(part)
    return epoch, position


async def scenario_with_drops(kind: str, url: str | None, ops: list[tuple[Any, ...]]) -> None:
    rig = Rig(kind, url, check_every=0.05)
    logs, hubs = rig.logs, rig.hubs
    last = dict.fromkeys(ROOMS, 0)
    epochs: dict[str, str] = {}
    watched: list[tuple[Watched, str | None]] = []
    for hub in hubs:
        await hub.start()
    try:
        for op in ops:
            if op[0] == "append":
                _, h, room, local = op
                epoch, offset = await logs[h].append(room, payload(last[room] + 1))
                assert epochs.setdefault(room, epoch) == epoch
                assert offset == last[room] + 1
                last[room] = offset
                if local:
                    hubs[h].deliver_local(RoomEntry(room, offset, payload(offset), epoch))
            elif op[0] == "subscribe":
                _, h, room, share, with_epoch = op
                after = int(share * last[room])
                known = epochs.get(room) if with_epoch else None
                sink = Collector()
                sub = hubs[h].subscribe(
                    room, sink, after=after, epoch=known, on_reset=sink.on_reset
                )
                watched.append((Watched(sub, sink, after), known))
            elif op[0] == "close":
                open_ones = [w for w, _ in watched if w.closed_at is None]
                if open_ones:
                    chosen = open_ones[int(op[1]) % len(open_ones)]
                    chosen.sub.close()
                    chosen.closed_at = last[chosen.sub.room]
            elif op[0] == "drop":
                await logs[0].drop(op[1])
                last[op[1]] = 0
                epochs.pop(op[1], None)
            else:
                for _ in range(int(op[1])):
                    await asyncio.sleep(0)

        async def settled() -> bool:
            # A room dropped and not used since has no epoch: its sinks wait for the next.
            heads = await logs[0].heads(ROOMS)
            return all(
                w.closed_at is not None
                or w.sub.room not in heads
                or (w.sub.epoch, w.sub.last) == heads[w.sub.room]
                for w, _ in watched
            )

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not await settled():
            assert loop.time() < deadline, "the sinks did not settle"
            await asyncio.sleep(0.01)
        for w, known in watched:
            epoch, position = check_segments(w, known)
            if w.closed_at is None and epoch is not None:
                assert (epoch, position) == (w.sub.epoch, w.sub.last)
    finally:
        await rig.close()


@settings(max_examples=200, deadline=None)
@given(ops=steps_with_drops)
def test_sinks_stay_gapless_across_epoch_changes_in_process(ops: list[tuple[Any, ...]]) -> None:
    asyncio.run(scenario_with_drops("memory", None, ops))


@pytest.mark.redis
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=steps_with_drops)
def test_sinks_stay_gapless_across_epoch_changes_across_processes(
    redis_url: str, ops: list[tuple[Any, ...]]
) -> None:
    asyncio.run(scenario_with_drops("redis", redis_url, ops))
