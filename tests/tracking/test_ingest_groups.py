"""Group commit: batches that queue behind a transaction are written together, as if each
had been written alone in turn (ids, sessions, quota), and a group that cannot be written as
one falls back to its batches one by one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from core.tracking.attribution import attribute, own_hosts
from core.tracking.events import Event, EventRules, check_events
from core.tracking.quota import month_of
from core.tracking.score import DEFAULT_WEIGHTS
from service.db.types import from_timestamp
from service.settings import Settings
from service.tracking import quota
from service.tracking.access import script_scope
from service.tracking.batch import BatchContext, write_group
from service.tracking.ingest_metrics import WRITE_PATHS
from service.tracking.sessions import Visit
from service.tracking.sites import Site
from tests.tracking.ingest_support import (
    NOW,
    Harness,
    batch,
    click,
    harness,
    intent,
    new_site,
    page_view,
)

RULES = EventRules(now=NOW, max_event_bytes=4096, max_age_seconds=86_400)


def _ctx(site: Site, visitor: str, limit: int = 1000) -> BatchContext:
    hosts = own_hosts(site.domains)
    return BatchContext(
        scope=script_scope(site),
        visit=Visit(visitor, "mobile", None, None),
        hosts=hosts,
        fallback=attribute(None, None, hosts),
        timeout_seconds=1800,
        weights=DEFAULT_WEIGHTS,
        month=month_of(NOW),
        limit=limit,
        now=from_timestamp(NOW),
    )


def _events(*raws: dict[str, Any]) -> list[Event]:
    checked = check_events(list(raws), RULES)
    assert all(isinstance(c, Event) for c in checked)
    return [c for c in checked if isinstance(c, Event)]


async def test_a_group_is_written_as_its_batches_would_be_in_turn(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        other = await new_site(h.db)
        dialect = h.db.dialect
        async with h.db.begin() as conn:
            for site in (h.site, other):
                await quota.lock(conn, dialect, script_scope(site), month_of(NOW))
        shared = click(NOW - 50)
        tab_one = _events(page_view(NOW - 60, "https://example.com/?gclid=G7"), shared)
        tab_two = _events(shared, page_view(NOW - 40, "https://example.com/b"))
        call = _events(intent(NOW - 30, "phone", "tel:+905551112233"))
        elsewhere = _events(dict(shared), page_view(NOW - 20))
        async with h.db.begin() as conn:
            written = await write_group(
                conn,
                dialect,
                [
                    (_ctx(h.site, "v_grouptab00000000001"), tab_one),
                    (_ctx(h.site, "v_grouptab00000000001"), tab_two),
                    (_ctx(h.site, "v_grouptab00000000001"), call),
                    (_ctx(other, "v_grouptab00000000001"), elsewhere),
                ],
            )
        stored = [[p.event.id for p in w.placed] for w in written]
        # The id both tabs carried is the first one's; the other site has its own.
        assert stored == [
            [tab_one[0].id, shared["id"]],
            [tab_two[1].id],
            [call[0].id],
            [shared["id"], elsewhere[1].id],
        ]
        # One visitor, one session across the three batches, with the landing's click id.
        (session,) = await h.sessions()
        assert (session.page_views, session.events, session.gclid) == (2, 4, "G7")
        assert {p.session.id for w in written[:3] for p in w.placed} == {session.id}
        (row,) = await h.intents()
        assert row.gclid == "G7" and row.session_id == session.id
        assert [w.used for w in written] == [4, 4, 4, 2]
        (usage,) = await h.usage()
        assert (usage.events, usage.intents) == (4, 1)


async def _flood(h: Harness, bodies: list[Any]) -> list[Any]:
    return list(await asyncio.gather(*(h.send(body) for body in bodies)))


def _count(path: str) -> float:
    return WRITE_PATHS.labels(path)._value.get()


async def test_queued_batches_go_together_and_a_quota_crossing_group_falls_back(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url, tracking_monthly_events=30) as h:
        await h.send(batch(h.site, [click(NOW - 99)]))  # the month's row exists now
        groups = _count("group")
        bodies = [
            batch(h.site, [click(NOW - 90 + n)], visitor=f"v_groupflood{n:010d}") for n in range(12)
        ]
        answers = await _flood(h, bodies)
        assert [a.status_code for a in answers] == [200] * 12
        assert _count("group") > groups
        # 13 used of 30: twelve batches of two cross the limit; they fall back to one by one
        # and exactly the room is used.
        singles = _count("exact")
        bodies = [
            batch(h.site, [click(NOW - 50 + n), click(NOW - 49 + n)], visitor=f"v_grp{n:016d}")
            for n in range(12)
        ]
        answers = await _flood(h, bodies)
        assert _count("exact") > singles
        accepted = sum(a.json()["accepted"] for a in answers if a.status_code == 200)
        assert accepted == 17
        assert {a.status_code for a in answers} <= {200, 429}
        (usage,) = await h.usage()
        assert usage.events == 30 == len(await h.events())
