"""One contract for every state backend, run against the memory and the real Redis variant."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import StateBackendError
from service.backends import Backends, redis_backends
from service.backends import redis as redis_module
from service.backends.redis import check_version


async def test_kv_set_get_delete(backends: Backends) -> None:
    kv = backends.kv
    assert await kv.get("a") is None
    await kv.set("a", b"1")
    assert await kv.get("a") == b"1"
    assert await kv.get_many(["a", "missing"]) == [b"1", None]
    assert await kv.delete("a", "missing") == 1
    assert await kv.get("a") is None


async def test_kv_ttl_expires(backends: Backends) -> None:
    await backends.kv.set("short", b"x", ttl=0.05)
    left = await backends.kv.ttl("short")
    assert left is not None and 0 < left <= 0.05
    await asyncio.sleep(0.12)
    assert await backends.kv.get("short") is None
    assert await backends.kv.ttl("short") is None


async def test_kv_set_if_absent_and_compare_delete(backends: Backends) -> None:
    kv = backends.kv
    assert await kv.set_if_absent("lock", b"owner-1", ttl=5)
    assert not await kv.set_if_absent("lock", b"owner-2", ttl=5)
    assert not await kv.delete_if_equals("lock", b"owner-2")
    assert await kv.get("lock") == b"owner-1"
    assert await kv.delete_if_equals("lock", b"owner-1")
    assert await kv.set_if_absent("lock", b"owner-2")


async def test_counters_expire_from_first_increment(backends: Backends) -> None:
    c = backends.counters
    assert await c.get("hits") == 0
    assert await c.incr("hits", ttl=0.15) == 1
    await asyncio.sleep(0.05)
    assert await c.incr("hits", 4, ttl=0.15) == 5
    await asyncio.sleep(0.15)
    # The window did not restart at the second increment.
    assert await c.get("hits") == 0
    assert await c.incr("hits") == 1
    await c.reset("hits")
    assert await c.get("hits") == 0


async def test_hashes(backends: Backends) -> None:
    h = backends.hashes
    assert await h.get_all("h") == {}
    await h.set("h", {"a": b"1", "b": b"2"})
    assert await h.get("h", "a") == b"1"
    assert await h.incr("h", "n", 3) == 3
    assert await h.incr("h", "n") == 4
    assert await h.get_all("h") == {"a": b"1", "b": b"2", "n": b"4"}
    assert await h.delete("h", "a", "zz") == 1
    assert await h.get("h", "a") is None


async def test_hash_ttl(backends: Backends) -> None:
    await backends.hashes.set("ht", {"a": b"1"}, ttl=0.05)
    await asyncio.sleep(0.12)
    assert await backends.hashes.get_all("ht") == {}


async def test_lists_are_fifo(backends: Backends) -> None:
    lists = backends.lists
    assert await lists.pop("q") is None
    assert await lists.push("q", b"a", b"b") == 2
    assert await lists.push("q", b"c", b"b") == 4
    assert await lists.range("q") == [b"a", b"b", b"c", b"b"]
    assert await lists.range("q", 1, 2) == [b"b", b"c"]
    assert await lists.range("q", 0, -2) == [b"a", b"b", b"c"]
    assert await lists.position("q", b"c") == 2
    assert await lists.position("q", b"zz") is None
    assert await lists.remove("q", b"b") == 2
    assert await lists.length("q") == 2
    assert await lists.pop("q") == b"a"
    assert await lists.pop("q") == b"c"
    assert await lists.length("q") == 0


async def test_pubsub_delivers_to_subscribers(backends: Backends) -> None:
    async with backends.pubsub.subscribe("room") as sub:
        # Redis subscriptions become active asynchronously; publish until one is received.
        for _ in range(50):
            if await backends.pubsub.publish("room", b"hello") > 0:
                break
            await asyncio.sleep(0.02)
        got = await sub.get(timeout=2)
        assert got == ("room", b"hello")
        assert await sub.get(timeout=0.05) is None
    assert await backends.pubsub.publish("room", b"late") == 0


async def test_pubsub_over_several_channels(backends: Backends) -> None:
    # On a cluster the channels lie in different slots (and nodes): each is read on its own.
    channels = [f"ch-{i}" for i in range(6)]
    async with backends.pubsub.subscribe(*channels) as sub:
        for channel in channels:
            for _ in range(50):
                if await backends.pubsub.publish(channel, channel.encode()) > 0:
                    break
                await asyncio.sleep(0.02)
        got = {await sub.get(timeout=2) for _ in channels}
        assert got == {(channel, channel.encode()) for channel in channels}
        assert await sub.get(timeout=0.05) is None


async def test_streams_replay_from_id(backends: Backends) -> None:
    s = backends.streams
    assert await s.read("chat") == []
    ids = [await s.append("chat", {"n": str(i).encode()}) for i in range(5)]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    assert await s.length("chat") == 5
    everything = await s.read("chat")
    assert [f["n"] for _, f in everything] == [b"0", b"1", b"2", b"3", b"4"]
    after_second = await s.read("chat", after=ids[1])
    assert [i for i, _ in after_second] == ids[2:]
    assert len(await s.read("chat", count=2)) == 2
    await s.append("chat", {"n": b"5"}, maxlen=3)
    assert await s.length("chat") == 3


async def test_stream_blocking_read_wakes_on_append(backends: Backends) -> None:
    s = backends.streams
    last = await s.append("live", {"n": b"0"})

    async def later() -> None:
        await asyncio.sleep(0.05)
        await s.append("live", {"n": b"1"})

    task = asyncio.create_task(later())
    got = await s.read("live", after=last, block=2)
    await task
    assert [f["n"] for _, f in got] == [b"1"]
    assert await s.read("live", after=got[-1][0], block=0.05) == []


async def test_namespaces_isolate(backends: Backends) -> None:
    await backends.kv.set("shared-name", b"mine")
    assert backends.key("x", "y") == f"{backends.namespace}:x:y"
    if backends.redis is not None:
        raw = await backends.redis.get(backends.key("shared-name"))
        assert raw == b"mine"


async def test_ping_checks_the_redis_version(
    backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine's Redis (and the test cluster's nodes) are new enough: the check passes.
    await backends.ping()
    if backends.redis is None:
        return  # in-process: no server version to check
    # A floor above every real server: readiness fails, naming the version every node runs.
    monkeypatch.setattr(redis_module, "MIN_REDIS_VERSION", (99, 0))
    with pytest.raises(StateBackendError, match=r"redis \d+\.\d+\.\d+ is too old"):
        await backends.ping()


def test_the_redis_version_check_names_a_server_too_old() -> None:
    check_version("7.0.0")
    check_version("7.2.4")
    for old in ("6.2.14", "5.0.7"):
        with pytest.raises(StateBackendError, match=f"redis {old} is too old"):
            check_version(old)
    with pytest.raises(StateBackendError, match="unreadable"):
        check_version("")


async def test_unreachable_redis_raises_our_error() -> None:
    broken = redis_backends("redis://127.0.0.1:1/0", "kt-broken", timeout=0.2)
    try:
        with pytest.raises(StateBackendError):
            await broken.kv.get("x")
        with pytest.raises(StateBackendError):
            await broken.ping()
    finally:
        await broken.close()
