"""Every Lua script of ``service/lua`` runs on a real 3-master Redis Cluster with all of its keys
in one slot.

Each Redis adapter is driven through the operations that run its scripts, while every EVAL and
EVALSHA sent (single commands and pipelines) is recorded. The cluster itself refuses keys of two
slots (CROSSSLOT, or redis-py before sending); the record adds that every script was really run
there, so a script added later without a cluster-safe call site fails here.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import pytest
from redis.asyncio.cluster import ClusterPipeline
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

from core.clock import ManualClock
from core.errors import StateBackendError
from core.ratelimit import build_catalog
from service.backends import Backends, redis_backends
from service.backends.redis import ClusterClient
from service.queue.redis_streams import RedisStreamsQueue
from service.ratelimit.redis_store import RedisGcraStore, RedisLockoutStore
from service.rtc.signals import Signal
from service.rtc.signals_redis import RedisSignalStore
from service.support.roomlog_redis import RedisRoomLog
from service.support.waitqueue_redis import RedisWaitQueue
from tests.queue.conftest import TEST_CONFIG, OffsetClock

T0 = 1_700_000_000.0


def _scripts() -> dict[str, str]:
    """sha1 -> name of every script shipped in service/lua."""
    found = {}
    for entry in resources.files("service.lua").iterdir():
        if entry.name.endswith(".lua"):
            source = entry.read_text(encoding="utf-8")
            found[hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()] = entry.name[
                :-4
            ]
    return found


SCRIPTS = _scripts()


class Recorder:
    """The EVAL/EVALSHA calls sent through cluster clients and cluster pipelines."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[bytes]]] = []

    def note(self, args: tuple[Any, ...]) -> None:
        if not args or str(args[0]).upper() not in ("EVAL", "EVALSHA"):
            return
        body = str(args[1])
        name = SCRIPTS.get(body) or SCRIPTS.get(
            hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest(), f"unknown:{body[:12]}"
        )
        keys = [k.encode() if isinstance(k, str) else bytes(k) for k in args[3 : 3 + int(args[2])]]
        self.calls.append((name, keys))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    made = Recorder()
    client_send = ClusterClient.execute_command
    pipe_send = ClusterPipeline.execute_command

    async def on_client(self: ClusterClient, *args: Any, **kwargs: Any) -> Any:
        made.note(args)
        return await client_send(self, *args, **kwargs)

    def on_pipeline(self: ClusterPipeline, *args: Any, **kwargs: Any) -> Any:
        made.note(args)
        return pipe_send(self, *args, **kwargs)

    monkeypatch.setattr(ClusterClient, "execute_command", on_client)
    monkeypatch.setattr(ClusterPipeline, "execute_command", on_pipeline)
    return made


@pytest.fixture
async def cluster(redis_cluster_url: str, redis_cluster_namespace: str) -> AsyncIterator[Backends]:
    made = redis_backends(redis_cluster_url, redis_cluster_namespace)
    assert made.cluster
    yield made
    await made.close()


async def _ratelimit(backends: Backends) -> None:
    catalog = build_catalog(
        {"t.p": "5/second burst 5"}, {"t.l": "2 failures in 1 minute lock 1 minute"}
    )
    clock = ManualClock(T0)
    assert backends.redis is not None
    gcra = RedisGcraStore(backends.redis, backends.namespace, clock=clock)
    policy = catalog.policies["t.p"]
    # Concurrent checks of many keys: batched calls, split by slot.
    await asyncio.gather(*(gcra.check(policy, f"k{i}", 1) for i in range(40)))
    await gcra.stop()
    lockouts = RedisLockoutStore(backends.redis, backends.namespace, clock=clock)
    rule = catalog.lockouts["t.l"]
    for _ in range(2):
        await lockouts.failure(rule, "alice")
    assert [lock.key for lock in (await lockouts.active_locks(10))[0]] == ["alice"]
    assert await lockouts.count_active() == 1
    assert await lockouts.unlock(rule, "alice")


async def _queue(backends: Backends) -> None:
    assert backends.redis is not None
    clock = OffsetClock()
    queue = RedisStreamsQueue(backends.redis, backends.key, clock, TEST_CONFIG)
    assert await queue.enqueue("a", {"n": 1}, key="j1")
    assert await queue.enqueue("b", {"n": 2}, key="j2", delay=0.01)
    await asyncio.sleep(0.02)
    clock.advance(1.0)  # the next claim promotes the delayed job
    jobs = await queue.claim(["a", "b"], 10, worker_id="w1")
    assert sorted(job.key for job in jobs) == ["j1", "j2"]
    done, dead = sorted(jobs, key=lambda job: job.key)
    assert await queue.complete(done)
    assert await queue.dead_letter(dead, error="boom", outcome="failed")
    assert [letter.key for letter in await queue.dead_letters()] == ["j2"]
    assert await queue.replay("j2")
    [again] = await queue.claim(["a", "b"], 10, worker_id="w1", wait=0.05)
    assert await queue.dead_letter(again, error="boom", outcome="failed")
    assert await queue.discard("j2")


async def _support(backends: Backends) -> None:
    log = RedisRoomLog(backends)
    try:
        epoch, _ = await log.append("room-1", b"{}")
        assert (await log.append_once("room-1", b"{}", marker="cid:p:1", marker_ttl=60))[2] is False
        assert (await log.since("room-1", epoch, 0)).recovered
    finally:
        await log.close()
    queue = RedisWaitQueue(backends)
    await queue.join("c1", capacity=10, now=T0)
    await queue.join("c2", capacity=10, now=T0)
    await queue.join("c3", capacity=10, now=T0)
    await queue.waiting()
    await queue.mark_disconnected("c2", until=T0 + 5)
    await queue.mark_connected("c2")
    await queue.mark_disconnected("c3", until=T0 + 1)
    await queue.expire_disconnected(now=T0 + 2)
    await queue.leave("c2")
    await queue.admin_ready("a1", now=T0)
    await queue.finish("a1", now=T0 + 3)
    await queue.admin_away("a1")
    await queue.join("c4", capacity=10, now=T0)
    await queue.expire_waited(now=T0 + 100, max_wait=10)


async def _rtc(backends: Backends) -> None:
    store = RedisSignalStore(backends)

    def signal(kind: str, sender: str, recipient: str, seq: int) -> Signal:
        return Signal("cu_r", "call-1", sender, recipient, kind, seq, b"{}", True)

    await store.signal(signal("call:start", "cu_r", "ad_1", 1), capacity=8, ttl=60, now=T0, ring=30)
    await store.ack("cu_r", "call-1", "ad_1", 1, [])
    await store.end("cu_r", "call-1", reason="hangup", payload=b"{}", now=T0 + 1, ttl=60)


async def test_every_script_runs_on_the_cluster_with_its_keys_in_one_slot(
    cluster: Backends, recorder: Recorder
) -> None:
    await _ratelimit(cluster)
    await _queue(cluster)
    await _support(cluster)
    await _rtc(cluster)
    ran = {name for name, _ in recorder.calls}
    assert ran == set(SCRIPTS.values()), f"not run on the cluster: {set(SCRIPTS.values()) - ran}"
    for name, keys in recorder.calls:
        assert keys, name
        assert all(key.startswith(cluster.namespace.encode() + b":") for key in keys), name
        assert len({key_slot(key) for key in keys}) == 1, (name, keys)
    # Load spreads: the calls of one run touch more than one slot.
    assert len({key_slot(keys[0]) for _, keys in recorder.calls}) > 10


async def test_the_cluster_refuses_keys_of_two_slots(cluster: Backends) -> None:
    """The check above can fail: a script whose keys lie in two slots is refused."""
    assert cluster.redis is not None
    a, b = cluster.key("{x}:one"), cluster.key("{y}:two")
    assert key_slot(a.encode()) != key_slot(b.encode())
    with pytest.raises((RedisClusterException, ResponseError, StateBackendError)):
        await cluster.redis.eval("return 1", 2, a, b)
