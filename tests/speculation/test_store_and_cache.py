"""The edge store on SQLite and MariaDB; the rules cache on the memory and Redis backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from core.clock import ManualClock
from service.backends import Backends, keys
from service.db import Database
from service.db.migrate import migrate
from service.db.types import utcnow
from service.settings import Settings
from service.speculation import store
from service.speculation.cache import Answer, SpeculationCache


async def probabilities(db: Database, seg: str) -> dict[tuple[str, str], tuple[int, float]]:
    rows = await store.list_edges(db, seg, limit=5000)
    return {(r.from_path, r.to_path): (r.count, r.probability) for r in rows}


async def test_transitions_add_up_with_exact_probabilities(database: Database) -> None:
    await store.add_transitions(
        database, {("en-d", "/", "/a"): 3, ("en-d", "/", "/b"): 1, ("tr-m", "/", "/a"): 5}, utcnow()
    )
    await store.add_transitions(
        database, {("en-d", "/", "/b"): 4, ("en-d", "/a", "/b"): 2}, utcnow()
    )
    assert await probabilities(database, "en-d") == {
        ("/", "/a"): (3, 0.375),
        ("/", "/b"): (5, 0.625),
        ("/a", "/b"): (2, 1.0),
    }
    assert await probabilities(database, "tr-m") == {("/", "/a"): (5, 1.0)}
    assert await store.segment_version(database, "en-d") == 2
    assert await store.segment_version(database, "de-d") == 0


async def test_concurrent_writers_keep_probabilities_exact(database: Database) -> None:
    async def writer(w: int) -> None:
        for i in range(5):
            counts = {("en-d", "/", f"/w{w}/p{i}"): w + i + 1, ("en-d", "/", "/shared"): 1}
            await store.add_transitions(database, counts, utcnow())

    await asyncio.gather(*(writer(w) for w in range(6)))
    got = await probabilities(database, "en-d")
    total = sum(count for count, _ in got.values())
    assert got[("/", "/shared")][0] == 30
    for count, probability in got.values():
        assert probability == pytest.approx(count / total, rel=1e-12)
    assert await store.segment_version(database, "en-d") == 30


async def test_bulk_load_replaces_or_adds(database: Database) -> None:
    await store.load_edges(
        database, "de-d", {("/", "/x"): 1, ("/", "/y"): 3}, replace=False, now=utcnow()
    )
    await store.load_edges(database, "de-d", {("/", "/x"): 1}, replace=False, now=utcnow())
    assert await probabilities(database, "de-d") == {("/", "/x"): (2, 0.4), ("/", "/y"): (3, 0.6)}
    await store.load_edges(database, "de-d", {("/q", "/r"): 7}, replace=True, now=utcnow())
    assert await probabilities(database, "de-d") == {("/q", "/r"): (7, 1.0)}
    version, edges = await store.segment_edges(database, "de-d")
    assert (version, edges) == (3, [("/q", "/r", 7)])


# ---------------------------------------------------------------- cache


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'flows.db'}")
    await migrate(db)
    yield db
    await db.dispose()


class CountingCache(SpeculationCache):
    computed = 0

    async def _compute(self, seg: str, mode: str) -> Answer:
        self.computed += 1
        await asyncio.sleep(0.01)  # long enough for concurrent callers to pile up
        return await super()._compute(seg, mode)


SITE = {("en-d", "/", "/en/projects"): 5, ("en-d", "/en/projects", "/en/projects/a"): 2}


async def test_instances_share_one_refresh(
    make_settings: Callable[..., Settings], sqlite_db: Database, backends: Backends
) -> None:
    clock = ManualClock()
    await store.add_transitions(sqlite_db, SITE, utcnow())
    settings = make_settings(public_origin="https://example.com", speculation_sims=2000)
    first = CountingCache(settings, sqlite_db, backends, clock)
    second = CountingCache(settings, sqlite_db, backends, clock)
    a = await first.refresh("en-d", "montecarlo")
    clock.advance(10)
    b = await second.refresh("en-d", "montecarlo")
    assert a is not None and b is not None
    assert (first.computed, second.computed) == (1, 0)  # same data version: adopted
    assert b.etag == a.etag and b.body == a.body and b.computed_at == a.computed_at + 10
    # New data: the next refresh, on whichever instance, recomputes.
    await store.add_transitions(sqlite_db, {("en-d", "/", "/en/about"): 50}, utcnow())
    c = await second.refresh("en-d", "montecarlo")
    assert c is not None and c.etag != a.etag and second.computed == 1
    assert b"/en/about" in c.body
    # The first instance picks it up without computing.
    d = await first.refresh("en-d", "montecarlo")
    assert d is not None and d.etag == c.etag and first.computed == 1


async def test_concurrent_refreshes_on_two_instances_compute_once(
    make_settings: Callable[..., Settings], sqlite_db: Database, backends: Backends
) -> None:
    await store.add_transitions(sqlite_db, SITE, utcnow())
    settings = make_settings(public_origin="https://example.com", speculation_sims=2000)
    clock = ManualClock()
    instances = [CountingCache(settings, sqlite_db, backends, clock) for _ in range(2)]
    await asyncio.gather(*(cache.refresh("en-d", "montecarlo") for cache in instances))
    # The instance that lost the race neither computed nor waited for the winner.
    assert sorted(cache.computed for cache in instances) == [0, 1]
    lock = f"{keys.SPECULATION_REFRESH_LOCK}:en-d:montecarlo"
    assert await backends.kv.get(lock) is None


async def test_a_held_lock_means_no_second_refresh(
    make_settings: Callable[..., Settings], sqlite_db: Database, backends: Backends
) -> None:
    clock = ManualClock()
    await store.add_transitions(sqlite_db, SITE, utcnow())
    settings = make_settings(public_origin="https://example.com", speculation_sims=2000)
    cache = CountingCache(settings, sqlite_db, backends, clock)
    lock = f"{keys.SPECULATION_REFRESH_LOCK}:en-d:montecarlo"
    assert await backends.kv.set_if_absent(lock, b"another-instance", ttl=30)
    assert await cache.refresh("en-d", "montecarlo") is None
    assert cache.computed == 0
    # A request still gets an answer, computed locally since nothing is published yet.
    answer = await cache.get("en-d", "montecarlo")
    assert cache.computed == 1 and b"/en/projects" in answer.body
    assert await backends.kv.get(lock) == b"another-instance"  # never released by others
    await backends.kv.delete(lock)
    assert await cache.refresh("en-d", "montecarlo") is not None
    assert await backends.kv.get(lock) is None  # released after the refresh


async def test_cold_requests_wait_for_one_computation_only(
    make_settings: Callable[..., Settings], sqlite_db: Database, backends: Backends
) -> None:
    await store.add_transitions(sqlite_db, SITE, utcnow())
    settings = make_settings(public_origin="https://example.com", speculation_sims=2000)
    cache = CountingCache(settings, sqlite_db, backends, ManualClock())
    answers = await asyncio.gather(*(cache.get("en-d", "exact") for _ in range(8)))
    assert cache.computed == 1
    assert len({a.etag for a in answers}) == 1
    # Cached now: no more computations, and another instance finds the published answer.
    await cache.get("en-d", "exact")
    other = CountingCache(settings, sqlite_db, backends, ManualClock())
    assert (await other.get("en-d", "exact")).etag == answers[0].etag
    assert (cache.computed, other.computed) == (1, 0)


def test_shared_answers_survive_a_round_trip_and_reject_garbage() -> None:
    answer = Answer("en-d", "exact", b'{"prerender":[],"prefetch":[]}', '"e"', 1.5, 3, 0, 0)
    assert Answer.load(answer.dump()) == answer
    assert Answer.load(b"not json") is None
    assert Answer.load(b'{"seg": "en-d"}') is None


async def test_deadlock_victims_are_retried_and_other_errors_are_not() -> None:
    from core.errors import StorageError
    from service.db.conflicts import retry_lock_conflicts

    calls: list[int] = []

    async def deadlocked_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise StorageError("database error: OperationalError: (1213, 'Deadlock found')")

    await retry_lock_conflicts(deadlocked_once)
    assert len(calls) == 2

    async def broken() -> None:
        calls.append(1)
        raise StorageError("database error: OperationalError: (2003, 'cannot connect')")

    calls.clear()
    with pytest.raises(StorageError):
        await retry_lock_conflicts(broken)
    assert len(calls) == 1
