"""The per-site monthly event quota: headers on every answer, what fits of a batch that
crosses it, 429 until the month's end, the site's own limit, exact under concurrency, and
the usage owners read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core.tracking.quota import month_end, month_of
from service.settings import Settings
from service.tracking.access import script_scope
from service.tracking.quota import usage
from tests.tracking.ingest_support import NOW, batch, click, harness, intent, new_site


async def test_a_batch_crossing_the_quota_stores_what_fits(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url, tracking_monthly_events=5) as h:
        first = await h.send(batch(h.site, [click(NOW - 9), click(NOW - 8)]))
        assert first.status_code == 200
        assert first.headers["x-quota-limit"] == "5"
        assert first.headers["x-quota-remaining"] == "3"
        assert first.headers["x-quota-reset"] == str(int(month_end(NOW)))
        events = [click(NOW - 7), click(NOW - 6), click(NOW - 5), click(NOW - 4), click(NOW - 3)]
        crossing = await h.send(batch(h.site, events))
        assert crossing.status_code == 200
        results = crossing.json()["results"]
        assert [(r["outcome"], r.get("reason")) for r in results] == [
            ("accepted", None),
            ("accepted", None),
            ("accepted", None),
            ("rejected", "quota_exceeded"),
            ("rejected", "quota_exceeded"),
        ]
        assert crossing.headers["x-quota-remaining"] == "0"
        # The refused events keep no dedup row: after the reset they are stored.
        stored = {e.event_id for e in await h.events()}
        assert {r.event_id for r in await h.event_ids()} == stored and len(stored) == 5

        full = await h.send(batch(h.site, [click(NOW - 1)]))
        assert full.status_code == 429
        assert full.json()["error"]["code"] == "quota_exceeded"
        assert full.headers["retry-after"] == str(int(month_end(NOW) - NOW))
        assert full.headers["x-quota-remaining"] == "0"
        assert full.headers["access-control-allow-origin"] == "https://example.com"

        h.clock.set(month_end(NOW) + 60)
        h.ingest.forget_site()
        later = await h.send(batch(h.site, events[3:], sent_at=h.clock.now()))
        assert later.status_code == 200, later.text
        assert later.json()["accepted"] == 0 and later.json()["rejected"] == 2  # too old now
        fresh = await h.send(batch(h.site, [click(h.clock.now() - 1)]))
        assert fresh.json()["accepted"] == 1
        assert fresh.headers["x-quota-remaining"] == "4"
        async with h.db.connect() as conn:
            december = await usage(conn, script_scope(h.site), month_of(NOW))
            january = await usage(conn, script_scope(h.site), month_of(h.clock.now()))
        assert (december.events, january.events) == (5, 1)


async def test_the_sites_own_limit_and_intents_counted(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url, config={"monthly_events": 3}) as h:
        answer = await h.send(
            batch(h.site, [intent(NOW - 2, "phone", "tel:+905551112233"), click(NOW - 1)])
        )
        assert answer.headers["x-quota-limit"] == "3"
        assert answer.headers["x-quota-remaining"] == "1"
        async with h.db.connect() as conn:
            used = await usage(conn, script_scope(h.site), month_of(NOW))
        assert (used.events, used.intents) == (2, 1)
        # Another site has the default limit and its own count.
        other = await new_site(h.db)
        theirs = await h.send(batch(other, [click(NOW)]))
        assert theirs.headers["x-quota-limit"] == str(h.settings.tracking_monthly_events)


async def test_concurrent_batches_never_pass_the_quota(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url, tracking_monthly_events=23) as h:
        bodies = [
            batch(h.site, [click(NOW - 10 + k) for k in range(5)], visitor=f"v_quota{n:016d}")
            for n in range(8)
        ]
        answers = await asyncio.gather(*(h.send(body) for body in bodies))
        statuses = sorted(a.status_code for a in answers)
        assert set(statuses) <= {200, 429}
        accepted = sum(a.json()["accepted"] for a in answers if a.status_code == 200)
        assert accepted == 23
        assert len(await h.events()) == 23 == len(await h.event_ids())
        (row,) = await h.usage()
        assert row.events == 23
