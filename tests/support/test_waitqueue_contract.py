"""The waiting queue keeps one contract in-process and on the real Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import redis as sync_redis

from core.errors import StateBackendError
from core.support.eta import HandleStats
from service.backends import Backends, redis_backends
from service.support.stores import create_wait_queue
from service.support.waitqueue import (
    Assigned,
    Assignment,
    Full,
    Waiting,
    WaitingCustomer,
    WaitQueue,
)
from service.support.waitqueue_memory import MemoryWaitQueue
from service.support.waitqueue_redis import RedisWaitQueue

T0 = 1_700_000_000.0
ROOM = 100  # a capacity nobody reaches


@pytest.fixture
def queue(backends: Backends) -> WaitQueue:
    return create_wait_queue(backends)


async def test_the_factory_follows_the_backend_kind(backends: Backends) -> None:
    made = create_wait_queue(backends)
    assert made.kind == backends.kind
    assert isinstance(made, MemoryWaitQueue if backends.kind == "memory" else RedisWaitQueue)


async def test_customers_wait_in_join_order_and_rejoining_keeps_the_place(
    queue: WaitQueue,
) -> None:
    assert await queue.join("ayse", capacity=ROOM, now=T0) == Waiting(1)
    assert await queue.join("bernd", capacity=ROOM, now=T0 + 1.5) == Waiting(2)
    assert await queue.join("carol", capacity=ROOM, now=T0 + 2.25) == Waiting(3)
    assert await queue.join("bernd", capacity=ROOM, now=T0 + 9) == Waiting(2)
    assert [await queue.position(c) for c in ("ayse", "bernd", "carol", "dora")] == [1, 2, 3, None]
    assert await queue.waiting() == [
        WaitingCustomer("ayse", T0, None),
        WaitingCustomer("bernd", T0 + 1.5, None),
        WaitingCustomer("carol", T0 + 2.25, None),
    ]
    assert await queue.free_admins() == []


async def test_a_ready_admin_takes_the_head_and_positions_move_up(queue: WaitQueue) -> None:
    for i, customer in enumerate(["ayse", "bernd", "carol"]):
        await queue.join(customer, capacity=ROOM, now=T0 + i)
    before = await queue.version()
    assert await queue.admin_ready("admin-1", now=T0 + 10) == "ayse"
    assert await queue.version() == before + 1
    assert await queue.assignment_of_admin("admin-1") == "ayse"
    assert await queue.assignment_of_customer("ayse") == "admin-1"
    assert await queue.position("ayse") is None
    assert [await queue.position(c) for c in ("bernd", "carol")] == [1, 2]
    # Serving already: a second "ready" (another tab) changes nothing.
    assert await queue.admin_ready("admin-1", now=T0 + 11) is None
    assert await queue.version() == before + 1
    assert await queue.assignment_of_admin("admin-1") == "ayse"
    assert await queue.free_admins() == []
    # An assigned customer joining again is told its admin.
    assert await queue.join("ayse", capacity=ROOM, now=T0 + 12) == Assigned("admin-1")
    assert await queue.admin_ready("admin-2", now=T0 + 13) == "bernd"
    assert await queue.assignments() == [
        Assignment("admin-1", "ayse", T0 + 10),
        Assignment("admin-2", "bernd", T0 + 13),
    ]
    assert await queue.waiting() == [WaitingCustomer("carol", T0 + 2, None)]


async def test_with_nobody_waiting_the_longest_free_admin_is_taken(queue: WaitQueue) -> None:
    assert await queue.admin_ready("zeynep", now=T0 + 5) is None
    assert await queue.admin_ready("ali", now=T0 + 7) is None
    assert await queue.admin_ready("mert", now=T0 + 5) is None  # same time as zeynep
    assert await queue.admin_ready("zeynep", now=T0 + 50) is None  # keeps its free-since
    assert await queue.free_admins() == ["mert", "zeynep", "ali"]  # equal times by name
    version = await queue.version()
    assert await queue.join("c1", capacity=ROOM, now=T0 + 60) == Assigned("mert")
    assert await queue.join("c2", capacity=ROOM, now=T0 + 61) == Assigned("zeynep")
    assert await queue.version() == version + 2
    assert await queue.free_admins() == ["ali"]
    await queue.admin_away("ali")
    assert await queue.free_admins() == []
    assert await queue.join("c3", capacity=ROOM, now=T0 + 62) == Waiting(1)
    # Back from away: the head at once.
    assert await queue.admin_ready("ali", now=T0 + 63) == "c3"
    assert await queue.assignment_of_customer("c3") == "ali"


async def test_away_and_free_do_not_touch_the_version_or_an_assignment(queue: WaitQueue) -> None:
    await queue.admin_ready("admin-1", now=T0)
    await queue.admin_away("admin-1")
    await queue.admin_away("nobody")
    assert await queue.version() == 0
    assert await queue.join("c1", capacity=ROOM, now=T0) == Waiting(1)
    assert await queue.admin_ready("admin-1", now=T0 + 1) == "c1"
    await queue.admin_away("admin-1")  # busy with c1; still serves it
    assert await queue.assignment_of_admin("admin-1") == "c1"


async def test_capacity_refuses_newcomers_but_not_those_already_in(queue: WaitQueue) -> None:
    assert await queue.join("c1", capacity=2, now=T0) == Waiting(1)
    assert await queue.join("c2", capacity=2, now=T0) == Waiting(2)
    version = await queue.version()
    assert await queue.join("c3", capacity=2, now=T0) == Full(2)
    assert await queue.version() == version
    assert await queue.position("c3") is None
    assert await queue.join("c2", capacity=1, now=T0) == Waiting(2)
    assert await queue.leave("c1")
    assert await queue.join("c3", capacity=2, now=T0) == Waiting(2)


async def test_capacity_zero_still_hands_over_to_a_free_admin(queue: WaitQueue) -> None:
    assert await queue.join("c1", capacity=0, now=T0) == Full(0)
    await queue.admin_ready("admin-1", now=T0)
    assert await queue.join("c1", capacity=0, now=T0) == Assigned("admin-1")


async def test_leaving_shifts_the_ones_behind(queue: WaitQueue) -> None:
    for i, customer in enumerate(["c1", "c2", "c3", "c4"]):
        await queue.join(customer, capacity=ROOM, now=T0 + i)
    await queue.mark_disconnected("c2", until=T0 + 100)
    version = await queue.version()
    assert await queue.leave("c2")
    assert not await queue.leave("c2")
    assert not await queue.leave("never-joined")
    assert await queue.version() == version + 1
    assert [w.customer for w in await queue.waiting()] == ["c1", "c3", "c4"]
    assert [await queue.position(c) for c in ("c1", "c3", "c4")] == [1, 2, 3]
    # Joining again goes to the end, without the old disconnect mark.
    assert await queue.join("c2", capacity=ROOM, now=T0 + 9) == Waiting(4)
    assert (await queue.waiting())[-1] == WaitingCustomer("c2", T0 + 9, None)
    assert await queue.expire_disconnected(now=T0 + 1000) == []


async def test_finish_ends_the_assignment_and_feeds_the_statistics(queue: WaitQueue) -> None:
    assert await queue.handle_time() is None
    assert await queue.handle_time_spread() is None
    assert await queue.handle_stats() is None
    await queue.join("c1", capacity=ROOM, now=T0)
    await queue.join("c2", capacity=ROOM, now=T0)
    assert await queue.admin_ready("admin-1", now=T0 + 10) == "c1"
    assert await queue.finish("admin-2", now=T0 + 20) is None
    version = await queue.version()
    assert await queue.finish("admin-1", now=T0 + 110) == "c1"
    assert await queue.version() == version + 1
    assert await queue.assignment_of_admin("admin-1") is None
    assert await queue.assignment_of_customer("c1") is None
    assert await queue.finish("admin-1", now=T0 + 120) is None
    assert await queue.assignments() == []
    assert await queue.handle_stats() == HandleStats(100.0, 50.0, 1)
    # Finishing does not make the admin free: c2 still waits until "ready".
    assert await queue.free_admins() == []
    assert await queue.position("c2") == 1
    assert await queue.admin_ready("admin-1", now=T0 + 130) == "c2"
    assert await queue.finish("admin-1", now=T0 + 330) == "c2"
    # alpha 0.2: spread 50 + 0.2 * (|200 - 100| - 50) = 60, ewma 100 + 0.2 * 100 = 120
    assert await queue.handle_time() == pytest.approx(120.0)
    assert await queue.handle_time_spread() == pytest.approx(60.0)
    stats = await queue.handle_stats()
    assert stats is not None and stats.count == 2
    assert (stats.ewma, stats.spread) == (
        await queue.handle_time(),
        await queue.handle_time_spread(),
    )


async def test_a_clock_behind_counts_as_a_zero_handle_time(queue: WaitQueue) -> None:
    await queue.admin_ready("admin-1", now=T0 + 50)
    assert await queue.join("c1", capacity=ROOM, now=T0 + 50) == Assigned("admin-1")
    assert await queue.finish("admin-1", now=T0 + 40) == "c1"
    assert await queue.handle_stats() == HandleStats(0.0, 0.0, 1)


async def test_a_disconnected_customer_keeps_the_place_until_the_grace_ends(
    queue: WaitQueue,
) -> None:
    for i, customer in enumerate(["c1", "c2", "c3", "c4"]):
        await queue.join(customer, capacity=ROOM, now=T0 + i)
    assert not await queue.mark_disconnected("stranger", until=T0 + 5)
    assert not await queue.mark_connected("stranger")
    assert await queue.mark_disconnected("c3", until=T0 + 20)
    assert await queue.mark_disconnected("c1", until=T0 + 30)
    assert await queue.mark_disconnected("c4", until=T0 + 60)
    version = await queue.version()
    assert await queue.mark_disconnected("c4", until=T0 + 60)  # the same mark: no change
    assert await queue.version() == version
    assert (await queue.waiting())[0] == WaitingCustomer("c1", T0, T0 + 30)
    assert await queue.expire_disconnected(now=T0 + 19.5) == []
    assert await queue.version() == version
    # c4 came back in time; c1 and c3 did not (returned in queue order, not by deadline).
    assert await queue.mark_connected("c4")
    assert await queue.version() == version + 1
    assert await queue.mark_connected("c4")  # still waiting, nothing to clear
    assert await queue.version() == version + 1
    assert await queue.expire_disconnected(now=T0 + 30) == ["c1", "c3"]
    assert await queue.version() == version + 2
    assert await queue.waiting() == [
        WaitingCustomer("c2", T0 + 1, None),
        WaitingCustomer("c4", T0 + 3, None),
    ]
    assert await queue.expire_disconnected(now=T0 + 1000) == []
    assert not await queue.mark_connected("c1")


async def test_a_disconnected_head_is_still_handed_over(queue: WaitQueue) -> None:
    await queue.join("c1", capacity=ROOM, now=T0)
    await queue.mark_disconnected("c1", until=T0 + 30)
    assert await queue.admin_ready("admin-1", now=T0 + 1) == "c1"
    assert await queue.expire_disconnected(now=T0 + 31) == []
    assert await queue.assignment_of_customer("c1") == "admin-1"


async def test_the_longest_waiting_leave_at_the_maximum_wait(queue: WaitQueue) -> None:
    # Joined-at times out of order (two processes' clocks); the result is in queue order.
    for customer, at in [("c1", T0 + 10), ("c2", T0), ("c3", T0 + 20), ("c4", T0 + 5)]:
        await queue.join(customer, capacity=ROOM, now=at)
    await queue.mark_disconnected("c4", until=T0 + 999)
    version = await queue.version()
    assert await queue.expire_waited(now=T0 + 100, max_wait=100.5) == []
    assert await queue.expire_waited(now=T0 + 110, max_wait=100) == ["c1", "c2", "c4"]
    assert await queue.version() == version + 1
    assert [w.customer for w in await queue.waiting()] == ["c3"]
    assert await queue.position("c3") == 1
    assert await queue.expire_disconnected(now=T0 + 1000) == []  # c4's mark left with it
    assert await queue.expire_waited(now=T0 + 110, max_wait=100) == []


async def test_positions_stay_right_over_thousands_of_joins_and_leaves(queue: WaitQueue) -> None:
    total = 3000 if queue.kind == "memory" else 600
    for i in range(total):
        await queue.join(f"c{i}", capacity=total, now=T0 + i)
    for i in range(0, total, 3):
        assert await queue.leave(f"c{i}")
    for _ in range(total // 10):
        await queue.admin_ready("admin-1", now=T0)
        await queue.finish("admin-1", now=T0 + 1)
    expected = [f"c{i}" for i in range(total) if i % 3][total // 10 :]
    assert [w.customer for w in await queue.waiting()] == expected
    for position, customer in enumerate(expected, start=1):
        if position % 7 == 1 or position == len(expected):
            assert await queue.position(customer) == position
    assert await queue.join("late", capacity=total, now=T0) == Waiting(len(expected) + 1)


async def test_in_process_sequence_numbers_are_reused_past_the_tree() -> None:
    queue = MemoryWaitQueue()
    # Many more joins than the tree's first size, only a few waiting at a time.
    for i in range(5000):
        await queue.join(f"c{i}", capacity=10, now=T0 + i)
        if i % 4 == 3:
            for _ in range(3):
                await queue.leave((await queue.waiting())[0].customer)
    waiting = [w.customer for w in await queue.waiting()]
    assert [await queue.position(c) for c in waiting] == list(range(1, len(waiting) + 1))
    assert await queue.expire_waited(now=T0 + 4990, max_wait=0) == [
        c for c in waiting if int(c[1:]) <= 4990
    ]


def test_the_alpha_must_be_a_weight() -> None:
    with pytest.raises(ValueError):
        MemoryWaitQueue(alpha=0.0)
    with pytest.raises(ValueError):
        MemoryWaitQueue(alpha=1.5)


def test_the_redis_queue_needs_redis() -> None:
    from service.backends import memory_backends

    with pytest.raises(ValueError):
        RedisWaitQueue(memory_backends("x"))


def _keys_of(url: str, namespace: str) -> set[str]:
    client = sync_redis.Redis.from_url(url)
    try:  # test-only look at the keyspace
        return {k.decode() for k in client.scan_iter(match=f"{namespace}:*")}
    finally:
        client.close()


async def test_every_key_of_the_queue_shares_one_hash_tag(
    redis_url: str, redis_namespace: str
) -> None:
    backends = redis_backends(redis_url, redis_namespace)
    try:
        queue = RedisWaitQueue(backends)
        await queue.join("c1", capacity=ROOM, now=T0)
        await queue.join("c2", capacity=ROOM, now=T0)
        await queue.mark_disconnected("c2", until=T0 + 5)
        await queue.admin_ready("admin-1", now=T0)
        seen = _keys_of(redis_url, redis_namespace)
        await queue.finish("admin-1", now=T0 + 3)
        await queue.admin_ready("admin-2", now=T0)
        await queue.admin_ready("admin-3", now=T0)
        seen |= _keys_of(redis_url, redis_namespace)
    finally:
        await backends.close()
    short = {"wait", "seq", "joined", "gone", "free", "a2c", "c2a", "at", "stats", "ver"}
    assert seen == {f"{redis_namespace}:{{sup}}:{name}" for name in short}


async def test_redis_failures_surface_as_state_backend_errors() -> None:
    # Nothing listens on port 1: every call fails at connect.
    backends = redis_backends("redis://127.0.0.1:1/0", "down", timeout=0.2)
    queue = RedisWaitQueue(backends)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: queue.join("c", capacity=1, now=T0),
        lambda: queue.leave("c"),
        lambda: queue.position("c"),
        lambda: queue.waiting(),
        lambda: queue.admin_ready("a", now=T0),
        lambda: queue.admin_away("a"),
        lambda: queue.finish("a", now=T0),
        lambda: queue.assignment_of_admin("a"),
        lambda: queue.assignment_of_customer("c"),
        lambda: queue.free_admins(),
        lambda: queue.assignments(),
        lambda: queue.mark_disconnected("c", until=T0),
        lambda: queue.mark_connected("c"),
        lambda: queue.expire_disconnected(now=T0),
        lambda: queue.expire_waited(now=T0, max_wait=1),
        lambda: queue.handle_time(),
        lambda: queue.handle_time_spread(),
        lambda: queue.handle_stats(),
        lambda: queue.version(),
    ]
    try:
        for call in calls:
            with pytest.raises(StateBackendError):
                await call()
    finally:
        await backends.close()
