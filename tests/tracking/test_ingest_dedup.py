"""Dedup: a client event id is stored once per site, within one batch, across batches, and
when batches carrying the same ids race each other on separate connections and processes;
an event that cannot be stored leaves neither its row nor its dedup row behind."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import text

from core.clock import ManualClock
from core.tracking.attribution import attribute, own_hosts
from core.tracking.events import EventRules, check_events
from core.tracking.quota import month_of
from core.tracking.score import DEFAULT_WEIGHTS
from service.db import Database
from service.db.types import from_timestamp
from service.settings import Settings
from service.tracking import quota
from service.tracking.access import script_scope
from service.tracking.batch import BatchContext, write_events
from service.tracking.sessions import Visit
from tests.conftest import running_client
from tests.tracking.ingest_support import (
    NOW,
    ORIGIN,
    USER_AGENT,
    batch,
    click,
    harness,
    page_view,
)


async def test_an_id_is_stored_once_within_a_batch_and_across_batches(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        first = [page_view(NOW - 20), click(NOW - 10)]
        answer = (await h.send(batch(h.site, [*first, first[1]]))).json()
        assert [r["outcome"] for r in answer["results"]] == ["accepted", "accepted", "duplicate"]
        # A resend (the script's retry after a lost answer) with one new event.
        again = (await h.send(batch(h.site, [*first, click(NOW - 5)]))).json()
        assert [r["outcome"] for r in again["results"]] == ["duplicate", "duplicate", "accepted"]
        assert (again["accepted"], again["duplicates"]) == (1, 2)
        assert len(await h.events()) == 3 and len(await h.event_ids()) == 3
        (usage,) = await h.usage()
        assert usage.events == 3  # duplicates do not count against the quota
        # Another site may use the same ids: dedup is per site.
        other = await _other_site(h.db)
        theirs = (await h.send(batch(other, first))).json()
        assert theirs["accepted"] == 2


async def _other_site(db: Database) -> Any:
    from tests.tracking.ingest_support import new_site

    return await new_site(db)


@asynccontextmanager
async def _second_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_client(settings, clock=ManualClock(NOW)) as client:
        yield client


async def test_racing_batches_on_two_processes_store_each_event_once(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h, _second_app(h.settings) as other:
        ids = [click(NOW - 30 + n) for n in range(24)]
        rng = random.Random(7)

        async def send(client: httpx.AsyncClient, n: int) -> dict[str, Any]:
            chosen = rng.sample(ids, 12)
            body = batch(h.site, chosen, visitor=f"v_racer{n:016d}")
            answer = await client.post(
                "/t/sync", json=body, headers={"Origin": ORIGIN, "User-Agent": USER_AGENT}
            )
            assert answer.status_code == 200, answer.text
            result: dict[str, Any] = answer.json()
            return result

        answers = await asyncio.gather(*(send(h.client if n % 2 else other, n) for n in range(16)))
        accepted = Counter(
            r["id"] for a in answers for r in a["results"] if r["outcome"] == "accepted"
        )
        sent = {r["id"] for a in answers for r in a["results"]}
        assert set(accepted) == sent and set(accepted.values()) == {1}
        stored = Counter(e.event_id for e in await h.events())
        assert stored == accepted
        assert sorted(r.event_id for r in await h.event_ids()) == sorted(accepted)
        (usage,) = await h.usage()
        assert usage.events == len(accepted)


async def test_the_same_visitor_from_two_tabs_at_once_is_answered(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h, _second_app(h.settings) as other:
        bodies = [
            batch(h.site, [page_view(NOW - 5, f"https://example.com/{n}")]) for n in range(10)
        ]
        answers = await asyncio.gather(
            *(
                (h.client if n % 2 else other).post(
                    "/t/sync", json=body, headers={"Origin": ORIGIN, "User-Agent": USER_AGENT}
                )
                for n, body in enumerate(bodies)
            )
        )
        assert [a.status_code for a in answers] == [200] * 10
        assert len(await h.events()) == 10
        assert sum(s.events for s in await h.sessions()) == 10


def _context(h: Any) -> BatchContext:
    hosts = own_hosts(h.site.domains)
    return BatchContext(
        scope=script_scope(h.site),
        visit=Visit("v_direct0000000000001", "desktop", None, None),
        hosts=hosts,
        fallback=attribute(None, None, hosts),
        timeout_seconds=1800,
        weights=DEFAULT_WEIGHTS,
        month=month_of(NOW),
        limit=1000,
        now=from_timestamp(NOW),
    )


async def test_a_claim_held_by_an_open_transaction_decides_the_other(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    """Two transactions insert the same dedup rows: the second waits for the first (row lock
    on MariaDB, the write lock on SQLite) and then finds them taken; when the first rolls
    back instead, the second stores them."""
    async with harness(make_settings, database_url) as h:
        ctx = _context(h)
        dialect = h.db.dialect
        async with h.db.begin() as conn:
            await quota.lock(conn, dialect, ctx.scope, ctx.month)
        rules = EventRules(now=NOW, max_event_bytes=4096, max_age_seconds=86_400)
        for commit_first in (True, False):
            raws = [click(NOW - 3), click(NOW - 2), click(NOW - 1)]
            events: Any = check_events(raws, rules)
            started = asyncio.Event()

            async def second(events: Any = events, started: asyncio.Event = started) -> int:
                other = Database(database_url)
                try:
                    started.set()
                    async with other.begin() as conn:
                        written = await write_events(conn, dialect, ctx, events, room=None)
                    return len(written.placed)
                finally:
                    await other.dispose()

            class Rollback(Exception):
                pass

            try:
                async with h.db.begin() as conn:
                    first = await write_events(conn, dialect, ctx, events, room=None)
                    assert len(first.placed) == 3
                    racer = asyncio.create_task(second())
                    await started.wait()
                    await asyncio.sleep(0.3)  # give it time to reach its blocked insert
                    if not commit_first:
                        raise Rollback
            except Rollback:
                pass
            stored_by_second = await racer
            assert stored_by_second == (0 if commit_first else 3)
            ids = {r["id"] for r in raws}
            stored = Counter(e.event_id for e in await h.events() if e.event_id in ids)
            assert stored == Counter(ids)


async def test_an_event_that_cannot_be_stored_leaves_nothing_and_spares_the_rest(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        if h.db.dialect == "sqlite":
            create = (
                "CREATE TRIGGER kervan_test_boom BEFORE INSERT ON track_events "
                "WHEN NEW.name = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END"
            )
        else:
            create = (
                "CREATE TRIGGER kervan_test_boom BEFORE INSERT ON track_events FOR EACH ROW "
                "BEGIN IF NEW.name = 'boom' THEN "
                "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom'; END IF; END"
            )
        async with h.db.begin() as conn:
            await conn.execute(text(create))
        try:
            doomed = click(NOW - 5, name="boom")
            events = [page_view(NOW - 9), doomed, click(NOW - 1)]
            answer = (await h.send(batch(h.site, events))).json()
            results = [(r["outcome"], r.get("reason")) for r in answer["results"]]
            assert results == [
                ("accepted", None),
                ("rejected", "storage_failed"),
                ("accepted", None),
            ]
            stored = {e.event_id for e in await h.events()}
            assert stored == {events[0]["id"], events[2]["id"]}
            assert {r.event_id for r in await h.event_ids()} == stored
            (usage,) = await h.usage()
            assert usage.events == 2
        finally:
            async with h.db.begin() as conn:
                await conn.execute(text("DROP TRIGGER kervan_test_boom"))
        # Nothing of it was kept: sent again, it is stored now.
        again = (await h.send(batch(h.site, [doomed]))).json()
        assert again["results"][0]["outcome"] == "accepted"
