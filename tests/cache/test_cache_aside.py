"""Cache-aside on both state backends: hits after a miss, tags that invalidate for every
process, one load for concurrent misses, and reads that survive a backend outage."""

from __future__ import annotations

import asyncio

import pytest

from core.clock import ManualClock
from core.errors import StateBackendError
from service.backends import Backends
from service.cache.aside import CacheAside, invalidate_after_write


def count(name: str, outcome: str) -> float:
    from service.metrics import REGISTRY

    value = REGISTRY.get_sample_value(
        "kervan_cache_requests_total", {"cache": name, "outcome": outcome}
    )
    return 0.0 if value is None else value


async def test_a_value_is_loaded_once_then_served_until_its_tag_changes(backends: Backends) -> None:
    cache = CacheAside(backends)
    other_process = CacheAside(backends)
    loads: list[int] = []

    async def load() -> dict[str, int]:
        loads.append(1)
        return {"n": len(loads)}

    first = await cache.get_or_load("kpis", "site:1:2026-12", load, ttl=60, tags=["site:1"])
    again = await other_process.get_or_load("kpis", "site:1:2026-12", load, ttl=60, tags=["site:1"])
    assert first == again == {"n": 1}
    assert len(loads) == 1
    # Another site's tag leaves this value alone; its own tag makes it stale everywhere.
    await cache.invalidate("site:2")
    assert await other_process.get_or_load(
        "kpis", "site:1:2026-12", load, ttl=60, tags=["site:1"]
    ) == {"n": 1}
    await other_process.invalidate("site:1")
    assert await cache.get_or_load("kpis", "site:1:2026-12", load, ttl=60, tags=["site:1"]) == {
        "n": 2
    }
    assert len(loads) == 2


async def test_concurrent_misses_share_one_load(backends: Backends) -> None:
    cache = CacheAside(backends)
    loads = 0
    gate = asyncio.Event()

    async def load() -> list[int]:
        nonlocal loads
        loads += 1
        await gate.wait()
        return [1, 2, 3]

    before = count("list", "miss")
    waiting = [
        asyncio.create_task(cache.get_or_load("list", "k", load, ttl=60, tags=["t"]))
        for _ in range(10)
    ]
    # Each task counts its miss right before it joins the flight (no await in between).
    while count("list", "miss") < before + 10:
        await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(*waiting) == [[1, 2, 3]] * 10
    assert loads == 1


async def test_a_failing_load_is_not_cached_and_reaches_every_waiter(backends: Backends) -> None:
    cache = CacheAside(backends)

    async def broken() -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError):
        await cache.get_or_load("x", "k", broken, ttl=60)

    async def fine() -> int:
        return 7

    assert await cache.get_or_load("x", "k", fine, ttl=60) == 7


async def test_a_backend_outage_loads_directly(
    backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CacheAside(backends)

    async def down(*_: object, **__: object) -> None:
        raise StateBackendError("down")

    monkeypatch.setattr(backends.kv, "get", down)
    before = count("out", "error")

    async def load() -> str:
        return "fresh"

    assert await cache.get_or_load("out", "k", load, ttl=60) == "fresh"
    assert count("out", "error") == before + 1


async def test_a_value_expires_with_its_ttl_on_the_given_clock(backends: Backends) -> None:
    clock = ManualClock()
    cache = CacheAside(backends, clock=clock.now)
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        return loads

    assert await cache.get_or_load("ttl", "k", load, ttl=30, tags=["t"]) == 1
    clock.advance(29)
    assert await cache.get_or_load("ttl", "k", load, ttl=30, tags=["t"]) == 1
    clock.advance(1)
    assert await cache.get_or_load("ttl", "k", load, ttl=30, tags=["t"]) == 2
    assert loads == 2


async def test_an_invalidation_after_a_write_never_fails_the_write(
    backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CacheAside(backends)

    async def down(*_: object, **__: object) -> None:
        raise StateBackendError("down")

    monkeypatch.setattr(backends.counters, "incr", down)
    await cache.invalidate_after_write("site:1")
    await invalidate_after_write(backends, "site:1")
    with pytest.raises(StateBackendError):
        await cache.invalidate("site:1")
