"""Many "processes" (separate Redis clients, one queue) race on the real Redis.

Every customer is served exactly once, never by two admins, no admin holds two customers, and
the order of service follows the order of joining. The exact interleaving is Redis's; what the
test can observe is real time, so order is checked where real time decides it: when one call
had returned before another began, Redis ran it first.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from service.backends import Backends, redis_backends
from service.support.waitqueue import Assigned, Full, Waiting
from service.support.waitqueue_redis import RedisWaitQueue

pytestmark = pytest.mark.redis

PROCESSES = 4
T0 = 1_700_000_000.0


@dataclass(frozen=True)
class Span:
    start: float
    end: float

    def before(self, other: Span) -> bool:
        return self.end < other.start


@pytest.fixture
async def processes(redis_url: str, redis_namespace: str) -> AsyncIterator[list[RedisWaitQueue]]:
    # A generous timeout: a burst of 80 joins opens as many connections at once, and on a
    # loaded machine a connect once took over the default 2 s (what is tested is the order).
    made: list[Backends] = [
        redis_backends(redis_url, redis_namespace, max_connections=20, timeout=10.0)
        for _ in range(PROCESSES)
    ]
    yield [RedisWaitQueue(b) for b in made]
    for b in made:
        await b.close()


class Desk:
    """Admins that take customers, talk for no time and finish, each through random clients."""

    def __init__(self, queues: list[RedisWaitQueue], seed: int) -> None:
        self.queues = queues
        self.random = random.Random(seed)
        self.served: dict[str, list[tuple[str, Span]]] = {}  # customer -> (admin, when)
        self.clock = itertools.count()

    def pick(self) -> RedisWaitQueue:
        return self.random.choice(self.queues)

    def now(self) -> float:
        return T0 + next(self.clock)

    def record(self, customer: str, admin: str, span: Span) -> None:
        self.served.setdefault(customer, []).append((admin, span))

    async def finish(self, admin: str, customer: str) -> None:
        # The customer this admin holds is exactly the one it was given: never a second one.
        assert await self.pick().finish(admin, now=self.now()) == customer

    async def serve_until(self, admin: str, done: asyncio.Event, *, joins: bool) -> None:
        while not done.is_set():
            start = time.monotonic()
            got = await self.pick().admin_ready(admin, now=self.now())
            span = Span(start, time.monotonic())
            if got is not None:
                self.record(got, admin, span)
                await self.finish(admin, got)
                continue
            # Free, or handed a customer by a join meanwhile (that join recorded it); with
            # nobody joining, a None means busy in this admin's other tab, which finishes.
            held = await self.pick().assignment_of_admin(admin) if joins else None
            if held is not None:
                await self.finish(admin, held)
            else:
                await asyncio.sleep(0.001)

    async def idle(self, admins: list[str]) -> bool:
        return all([await self.pick().assignment_of_admin(a) is None for a in admins])


def assert_served_once_in_order(
    served: dict[str, list[tuple[str, Span]]], joined: dict[str, Span], customers: list[str]
) -> None:
    assert sorted(served) == sorted(customers)
    for customer, services in served.items():
        assert len(services) == 1, (customer, services)  # one admin, one time
    for x, y in itertools.permutations(customers, 2):
        if joined[x].before(joined[y]):
            # y joined after x: it cannot have been taken before x.
            assert not served[y][0][1].before(served[x][0][1]), (x, y)


async def test_a_crowd_that_waits_is_served_once_each_in_join_order(
    processes: list[RedisWaitQueue],
) -> None:
    customers = [f"cust-{i}" for i in range(80)]
    rng = random.Random(7)

    async def join(customer: str) -> tuple[str, object, Span]:
        start = time.monotonic()
        result = await rng.choice(processes).join(customer, capacity=1000, now=T0)
        return customer, result, Span(start, time.monotonic())

    answers = await asyncio.gather(*(join(c) for c in customers))
    # Nobody was free: each got a place of its own, and the list is in that order.
    places: dict[str, int] = {}
    for customer, result, _ in answers:
        assert isinstance(result, Waiting)
        places[customer] = result.position
    assert sorted(places.values()) == list(range(1, 81))
    order = [w.customer for w in await processes[0].waiting()]
    assert order == sorted(customers, key=places.__getitem__)

    desk = Desk(processes, seed=11)
    done = asyncio.Event()
    admins = [f"admin-{i}" for i in range(6)]
    # Each admin twice (two tabs): the second "ready" of a busy admin must change nothing.
    workers = [asyncio.create_task(desk.serve_until(a, done, joins=False)) for a in admins + admins]
    for _ in range(20_000):
        if len(desk.served) == len(customers) and await desk.idle(admins):
            break
        await asyncio.sleep(0.005)
    done.set()
    await asyncio.gather(*workers)

    assert sorted(desk.served) == sorted(customers)
    for customer, services in desk.served.items():
        assert len(services) == 1, (customer, services)
    rank = {c: i for i, c in enumerate(order)}
    for x, y in itertools.permutations(customers, 2):
        if desk.served[x][0][1].before(desk.served[y][0][1]):
            assert rank[x] < rank[y], (x, y)  # taken first, so it was ahead in the queue
    for admin in admins:
        assert await processes[2].assignment_of_admin(admin) is None
    assert await processes[3].position(customers[-1]) is None


async def test_joins_and_admins_racing_keep_every_rule(processes: list[RedisWaitQueue]) -> None:
    customers = [f"c-{i}" for i in range(90)]
    desk = Desk(processes, seed=3)
    joined: dict[str, Span] = {}
    rng = random.Random(5)

    async def join(customer: str) -> None:
        await asyncio.sleep(rng.random() * 0.05)
        start = time.monotonic()
        result = await rng.choice(processes).join(customer, capacity=1000, now=desk.now())
        span = Span(start, time.monotonic())
        joined[customer] = span
        if isinstance(result, Assigned):
            desk.record(customer, result.admin, span)
        else:
            assert isinstance(result, Waiting)

    done = asyncio.Event()
    admins = [f"admin-{i}" for i in range(3)]
    workers = [asyncio.create_task(desk.serve_until(a, done, joins=True)) for a in admins]
    await asyncio.gather(*(join(c) for c in customers))
    for _ in range(20_000):
        if len(desk.served) == len(customers) and await desk.idle(admins):
            break
        await asyncio.sleep(0.005)
    done.set()
    await asyncio.gather(*workers)

    assert_served_once_in_order(desk.served, joined, customers)
    assert await processes[0].waiting() == []
    stats = await processes[0].handle_stats()
    assert stats is not None and stats.count == len(customers)


async def test_a_rush_at_the_capacity_admits_exactly_the_capacity(
    processes: list[RedisWaitQueue],
) -> None:
    rng = random.Random(9)
    results = await asyncio.gather(
        *(rng.choice(processes).join(f"r-{i}", capacity=25, now=T0) for i in range(70))
    )
    waiting = [r for r in results if isinstance(r, Waiting)]
    full = [r for r in results if isinstance(r, Full)]
    assert sorted(w.position for w in waiting) == list(range(1, 26))
    assert len(full) == 45 and all(f.waiting == 25 for f in full)
    assert len(await processes[0].waiting()) == 25


async def test_many_free_admins_and_a_burst_of_joins_pair_one_to_one(
    processes: list[RedisWaitQueue],
) -> None:
    admins = [f"admin-{i}" for i in range(10)]
    for i, admin in enumerate(admins):
        assert await processes[i % PROCESSES].admin_ready(admin, now=T0 + i) is None
    rng = random.Random(13)
    results = await asyncio.gather(
        *(rng.choice(processes).join(f"b-{i}", capacity=100, now=T0 + 50) for i in range(25))
    )
    given = [r.admin for r in results if isinstance(r, Assigned)]
    assert sorted(given) == sorted(admins)  # each free admin taken once
    assert sorted(r.position for r in results if isinstance(r, Waiting)) == list(range(1, 16))
    assert await processes[0].free_admins() == []
    for admin in admins:
        customer = await processes[1].assignment_of_admin(admin)
        assert customer is not None
        assert await processes[2].assignment_of_customer(customer) == admin
