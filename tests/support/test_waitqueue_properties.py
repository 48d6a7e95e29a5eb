"""Random sequences of queue operations give the reference model's answers on both backends.

After every step the whole observable state is compared with ``tests/reference/support_queue.py``
and the invariants are checked on the backend's own answers: positions are exactly 1..n, the
waiting order is the order of the joins that appended (FIFO), no customer is both waiting and
served or served by two admins, no admin holds two customers, and a free admin exists only
while nobody waits. Handle-time statistics must agree to the last bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.backends import Backends, redis_backends
from service.support.waitqueue import Assigned, Full, JoinResult, Waiting, WaitQueue
from service.support.waitqueue_memory import MemoryWaitQueue
from service.support.waitqueue_redis import RedisWaitQueue
from tests.reference.support_queue import SupportQueueReference

CUSTOMERS = [f"c{i}" for i in range(11)] + ["ç-ü"]
ADMINS = ["a0", "a1", "zz"]
T0 = 1_700_000_000.0

# Time moves mostly forward in small steps, sometimes a little back (another process's clock).
_step = st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.5, -1.5]) | st.floats(
    -5.0, 40.0, allow_nan=False, allow_infinity=False
)
_grace = st.sampled_from([0.0, 1.0, 3.0]) | st.floats(0.0, 60.0, allow_nan=False)
_max_wait = st.sampled_from([0.0, 2.0]) | st.floats(0.0, 300.0, allow_nan=False)
_capacity = st.just(100) | st.integers(0, 6)
# Joins come up most often so that queues grow; the rest keep them moving.
_kinds = st.sampled_from(
    ["join"] * 5
    + ["ready"] * 2
    + ["finish"] * 2
    + ["leave", "away", "disconnect", "disconnect", "connect"]
    + ["expire_disconnected", "expire_waited"]
)


def _among(preferred: list[str], everyone: list[str]) -> st.SearchStrategy[str]:
    """Mostly someone the operation can act on, sometimes anyone (acting on nothing)."""
    anyone = st.sampled_from(everyone)
    return st.sampled_from(preferred) | anyone if preferred else anyone


def operation(model: SupportQueueReference) -> st.SearchStrategy[tuple[Any, ...]]:
    """The next operation, its targets drawn with the reference model's state in view."""
    waiting = [e.customer for e in model.queue]
    outside = [c for c in CUSTOMERS if c not in waiting and model.assignment_of_customer(c) is None]
    serving = sorted(model.serving)

    def build(kind: str) -> st.SearchStrategy[tuple[Any, ...]]:
        if kind == "join":
            return st.tuples(st.just(kind), _among(outside, CUSTOMERS), _capacity)
        if kind in ("ready", "away"):
            return st.tuples(st.just(kind), st.sampled_from(ADMINS))
        if kind == "finish":
            return st.tuples(st.just(kind), _among(serving, ADMINS))
        if kind == "disconnect":
            return st.tuples(st.just(kind), _among(waiting, CUSTOMERS), _grace)
        if kind in ("leave", "connect"):
            return st.tuples(st.just(kind), _among(waiting, CUSTOMERS))
        if kind == "expire_waited":
            return st.tuples(st.just(kind), _max_wait)
        return st.tuples(st.just(kind))

    return _kinds.flatmap(build)


def _join_answer(result: JoinResult) -> tuple[str, object]:
    if isinstance(result, Waiting):
        return ("waiting", result.position)
    if isinstance(result, Assigned):
        return ("assigned", result.admin)
    assert isinstance(result, Full)
    return ("full", result.waiting)


async def _apply(queue: WaitQueue, op: tuple[Any, ...], now: float) -> object:
    name, *args = op
    if name == "join":
        return _join_answer(await queue.join(args[0], capacity=args[1], now=now))
    if name == "leave":
        return await queue.leave(args[0])
    if name == "ready":
        return await queue.admin_ready(args[0], now=now)
    if name == "away":
        return await queue.admin_away(args[0])
    if name == "finish":
        return await queue.finish(args[0], now=now)
    if name == "disconnect":
        return await queue.mark_disconnected(args[0], until=now + args[1])
    if name == "connect":
        return await queue.mark_connected(args[0])
    if name == "expire_disconnected":
        return await queue.expire_disconnected(now=now)
    assert name == "expire_waited"
    return await queue.expire_waited(now=now, max_wait=args[0])


def _apply_reference(model: SupportQueueReference, op: tuple[Any, ...], now: float) -> object:
    name, *args = op
    if name == "join":
        return model.join(args[0], args[1], now)
    if name == "leave":
        return model.leave(args[0])
    if name == "ready":
        return model.admin_ready(args[0], now)
    if name == "away":
        return model.admin_away(args[0])
    if name == "finish":
        return model.finish(args[0], now)
    if name == "disconnect":
        return model.mark_disconnected(args[0], now + args[1])
    if name == "connect":
        return model.mark_connected(args[0])
    if name == "expire_disconnected":
        return model.expire_disconnected(now)
    assert name == "expire_waited"
    return model.expire_waited(now, args[0])


async def _check_state(queue: WaitQueue, model: SupportQueueReference, appended: list[str]) -> None:
    waiting = await queue.waiting()
    listed = [(w.customer, w.joined_at, w.disconnected_until) for w in waiting]
    assert listed == model.waiting()
    order = [w.customer for w in waiting]
    # FIFO: the waiting customers keep the order of the joins that appended them.
    last_append = {c: i for i, c in enumerate(appended)}
    assert [last_append[c] for c in order] == sorted(last_append[c] for c in order)
    positions = {c: await queue.position(c) for c in CUSTOMERS}
    assert sorted(p for p in positions.values() if p is not None) == list(range(1, len(order) + 1))
    assert [positions[c] for c in order] == list(range(1, len(order) + 1))
    assert positions == {c: model.position(c) for c in CUSTOMERS}

    free = await queue.free_admins()
    assert free == model.free_admins()
    served = {a: await queue.assignment_of_admin(a) for a in ADMINS}
    serving = {c: await queue.assignment_of_customer(c) for c in CUSTOMERS}
    assert served == {a: model.assignment_of_admin(a) for a in ADMINS}
    assert serving == {c: model.assignment_of_customer(c) for c in CUSTOMERS}
    held = [c for c in served.values() if c is not None]
    assert len(held) == len(set(held))  # no customer with two admins
    for admin, customer in served.items():
        if customer is not None:
            assert serving[customer] == admin  # and each admin holds just this one
            assert customer not in order
            assert admin not in free
    assert {c for c, a in serving.items() if a is not None} == set(held)
    assert not (free and order)
    assert [(h.admin, h.customer, h.assigned_at) for h in await queue.assignments()] == sorted(
        ((a, c, at) for a, (c, at) in model.serving.items()), key=lambda h: (h[2], h[0])
    )

    stats = await queue.handle_stats()
    if model.ewma is None:
        assert stats is None
    else:
        assert stats is not None
        assert (stats.ewma, stats.spread, stats.count) == (model.ewma, model.spread, model.count)
    assert await queue.version() == model.version


async def _run(queue: WaitQueue, data: st.DataObject) -> None:
    model = SupportQueueReference()
    appended: list[str] = []
    now = T0
    for _ in range(data.draw(st.integers(5, 40), label="steps")):
        op = data.draw(operation(model))
        now += data.draw(_step)
        was_waiting = op[0] == "join" and model.position(op[1]) is not None
        got = await _apply(queue, op, now)
        want = _apply_reference(model, op, now)
        assert got == want, (op, got, want)
        if op[0] == "join" and not was_waiting and got == ("waiting", len(model.queue)):
            appended.append(op[1])
        await _check_state(queue, model, appended)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
async def test_in_process_queue_matches_the_reference(data: st.DataObject) -> None:
    await _run(MemoryWaitQueue(), data)


@pytest.fixture
async def redis_for_properties(
    redis_url: str, redis_namespace: str
) -> AsyncIterator[tuple[Backends, list[int]]]:
    made = redis_backends(redis_url, redis_namespace)
    yield made, [0]
    await made.close()


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_redis_queue_matches_the_reference(
    redis_for_properties: tuple[Backends, list[int]], data: st.DataObject
) -> None:
    backends, examples = redis_for_properties
    examples[0] += 1
    # A namespace per example (inside the test's, so the fixture's cleanup removes it).
    fresh = dataclasses.replace(backends, namespace=f"{backends.namespace}:ex{examples[0]}")
    await _run(RedisWaitQueue(fresh), data)
