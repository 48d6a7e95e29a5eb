# ruff: noqa: F811  (fixtures imported from tests/tracking/people_rig.py are redefined as parameters)
"""The per-site monthly intent quota: clicks past it are stored as events without an intent
(``intent_quota_exceeded`` on their results), exact under concurrency, on every write path,
starting over each month; plan limits per site (set by platform admins, validated) and the
usage people read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.tracking.attribution import attribute, own_hosts
from core.tracking.events import Event, EventRules, check_events
from core.tracking.quota import month_end, month_of
from core.tracking.score import DEFAULT_WEIGHTS
from service.db.types import from_timestamp
from service.settings import Settings
from service.tracking import quota
from service.tracking.access import script_scope
from service.tracking.batch import BatchContext, write_group
from service.tracking.ingest_metrics import QUOTA_REFUSALS
from service.tracking.sessions import Visit
from service.tracking.sites import Site
from tests.tracking.ingest_support import NOW, batch, harness, intent, new_site, page_view
from tests.tracking.people_rig import ADMIN, Rig, bearer, make_rig, rig, stack  # noqa: F401

REFUSED = {
    "outcome": "accepted",
    "warning": "intent_quota_exceeded",
    "message": "stored as an event; the site's monthly intent quota is used up, so it made "
    "no intent",
}


def call(ts: float, n: int) -> dict[str, Any]:
    return intent(ts, "phone", f"tel:+9055511122{n:02d}")


def refused_intents() -> float:
    return QUOTA_REFUSALS.labels("intents")._value.get()


async def test_clicks_past_the_intent_quota_are_stored_without_intents(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url, config={"monthly_intents": 2}) as h:
        before = refused_intents()
        events = [page_view(NOW - 60), call(NOW - 50, 1), call(NOW - 40, 2), call(NOW - 30, 3)]
        answer = await h.send(batch(h.site, events))
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [r["outcome"] for r in results] == ["accepted"] * 4
        assert [r.get("warning") for r in results[:3]] == [None, None, None]
        assert results[3] == {"id": events[3]["id"], **REFUSED}
        assert answer.json()["accepted"] == 4
        # The page view and every click are events; only the first two clicks are intents.
        assert len(await h.events()) == 4
        assert [i.stamp for i in await h.intents()] == [events[1]["id"], events[2]["id"]]
        (usage,) = await h.usage()
        assert (usage.events, usage.intents) == (4, 2)
        assert refused_intents() == before + 1

        # Known full in this process: later clicks are refused theirs on the fast path...
        later = [call(NOW - 20, 4), page_view(NOW - 10)]
        again = (await h.send(batch(h.site, later))).json()["results"]
        assert again[0] == {"id": later[0]["id"], **REFUSED}
        assert again[1] == {"id": later[1]["id"], "outcome": "accepted"}
        # ...and so they are by a process that does not know it (the exact path finds out).
        h.ingest.forget_site()
        fresh = [call(NOW - 5, 5)]
        third = (await h.send(batch(h.site, fresh))).json()["results"]
        assert third == [{"id": fresh[0]["id"], **REFUSED}]
        assert len(await h.intents()) == 2 and len(await h.events()) == 7
        (usage,) = await h.usage()
        assert (usage.events, usage.intents) == (7, 2)
        assert refused_intents() == before + 3

        # A new month makes intents again.
        h.clock.set(month_end(NOW) + 60)
        h.ingest.forget_site()
        january = [call(h.clock.now() - 1, 6)]
        answer = await h.send(batch(h.site, january, sent_at=h.clock.now()))
        assert answer.json()["results"] == [{"id": january[0]["id"], "outcome": "accepted"}]
        assert len(await h.intents()) == 3
        async with h.db.connect() as conn:
            used = await quota.usage(conn, script_scope(h.site), month_of(h.clock.now()))
        assert (used.events, used.intents) == (1, 1)


async def test_an_idempotent_replay_repeats_the_refusal(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url, config={"monthly_intents": 0}) as h:
        events = [call(NOW - 5, 1)]
        headers = {"Idempotency-Key": "quota-intents-0001"}
        first = await h.send(batch(h.site, events), headers=headers)
        replay = await h.send(batch(h.site, events), headers=headers)
        assert first.json()["results"] == [{"id": events[0]["id"], **REFUSED}]
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()
        assert await h.intents() == [] and len(await h.events()) == 1


async def test_concurrent_batches_never_pass_the_intent_quota(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(
        make_settings, database_url, tracking_monthly_intents=5, tracking_monthly_events=1000
    ) as h:
        bodies = [
            batch(
                h.site,
                [page_view(NOW - 30 + n), call(NOW - 20 + n, 2 * n), call(NOW - 10 + n, 2 * n + 1)],
                visitor=f"v_quotaint{n:013d}",
            )
            for n in range(8)
        ]
        answers = await asyncio.gather(*(h.send(body) for body in bodies))
        assert [a.status_code for a in answers] == [200] * 8
        results = [r for a in answers for r in a.json()["results"]]
        assert all(r["outcome"] == "accepted" for r in results)
        refused = [r for r in results if r.get("warning") == "intent_quota_exceeded"]
        assert len(refused) == 16 - 5
        made = await h.intents()
        assert len(made) == 5
        refused_ids = {r["id"] for r in refused}
        assert {i.stamp for i in made}.isdisjoint(refused_ids)
        assert len(await h.events()) == 24
        (usage,) = await h.usage()
        assert (usage.events, usage.intents) == (24, 5)


RULES = EventRules(now=NOW, max_event_bytes=4096, max_age_seconds=86_400)


def _ctx(site: Site, visitor: str, *, intents_full: bool) -> BatchContext:
    hosts = own_hosts(site.domains)
    return BatchContext(
        scope=script_scope(site),
        visit=Visit(visitor, "mobile", None, None),
        hosts=hosts,
        fallback=attribute(None, None, hosts),
        timeout_seconds=1800,
        weights=DEFAULT_WEIGHTS,
        month=month_of(NOW),
        limit=1000,
        now=from_timestamp(NOW),
        intent_limit=1000,
        intents_full=intents_full,
    )


def _events(*raws: dict[str, Any]) -> list[Event]:
    checked = check_events(list(raws), RULES)
    return [c for c in checked if isinstance(c, Event)]


async def test_a_group_makes_no_intents_for_a_site_known_full(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        other = await new_site(h.db)
        dialect = h.db.dialect
        async with h.db.begin() as conn:
            for site in (h.site, other):
                await quota.lock(conn, dialect, script_scope(site), month_of(NOW))
        full = _events(page_view(NOW - 20), call(NOW - 10, 1))
        open_ = _events(call(NOW - 5, 2))
        async with h.db.begin() as conn:
            written = await write_group(
                conn,
                dialect,
                [
                    (_ctx(h.site, "v_groupfull000000001", intents_full=True), full),
                    (_ctx(other, "v_groupfull000000001", intents_full=False), open_),
                ],
            )
        assert written[0].intent_refused == {full[1].id}
        assert written[1].intent_refused == set()
        assert await h.intents() == []
        assert [i.stamp for i in await h.rows_of(other)] == [open_[0].id]
        (mine,) = await h.usage()
        assert (mine.events, mine.intents) == (2, 0)


async def test_plan_limits_per_site_set_by_admins_and_read_by_members(rig: Rig) -> None:
    site = await rig.site("Plan", config={"monthly_events": 500})
    viewer = await rig.signed_in(site["id"], "viewer@example.com", "viewer")
    outsider_site = await rig.site("Other")
    outsider = await rig.signed_in(outsider_site["id"], "outsider@example.com", "owner")
    url = f"/t/sites/{site['id']}/usage"

    seen = await rig.client.get(url, headers=viewer)
    assert seen.status_code == 200, seen.text
    body = seen.json()
    settings = rig.runtime.settings
    assert body["month"] == month_of(rig.clock.now())
    assert body["warning_percent"] == settings.tracking_quota_warning_percent
    assert body["events"] == {
        "used": 0,
        "limit": 500,
        "remaining": 500,
        "percent": 0.0,
        "source": "site",
        "warned": 0,
    }
    assert body["intents"]["limit"] == settings.tracking_monthly_intents
    assert body["intents"]["source"] == "default"
    assert body["history"] == []
    assert (await rig.client.get(url, headers=outsider)).status_code == 404

    # Platform admins set and remove a site's limits; nonsense is refused, not ignored.
    patch = f"/admin/sites/{site['id']}"
    for bad in (-1, "1000", 1.5, True, 10**12 + 1):
        refused = await rig.client.patch(
            patch, json={"config": {"monthly_intents": bad}}, headers=ADMIN
        )
        assert refused.status_code == 422, (bad, refused.text)
        assert "monthly_events and monthly_intents" in refused.json()["error"]["message"]
    changed = await rig.client.patch(
        patch, json={"config": {"monthly_intents": 3, "monthly_events": None}}, headers=ADMIN
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["config"] == {"monthly_intents": 3}
    body = (await rig.client.get(url, headers=ADMIN)).json()
    assert (body["intents"]["limit"], body["intents"]["source"]) == (3, "site")
    assert (body["events"]["limit"], body["events"]["source"]) == (
        settings.tracking_monthly_events,
        "default",
    )
    # A member's session is not an admin's: the limits are not theirs to change.
    assert (await rig.client.patch(patch, json={"config": {}}, headers=viewer)).status_code in (
        401,
        403,
    )

    # Usage counts what the ingest stored, and the months before show in the history.
    domain = site["domains"][0]
    now = rig.clock.now()
    events = [page_view(now - 9, f"https://{domain}/")] + [
        intent(now - 8 + n, "phone", f"tel:+90555111220{n}", url=f"https://{domain}/")
        for n in range(4)
    ]
    answer = await rig.client.post(
        "/t/sync",
        json={"site": site["public_key"], "visitor": "v_usageview000000001", "events": events},
        headers={"Origin": f"https://{domain}"},
    )
    assert answer.status_code == 200, answer.text
    body = (await rig.client.get(url, headers=viewer)).json()
    assert body["intents"] == {
        "used": 3,
        "limit": 3,
        "remaining": 0,
        "percent": 100.0,
        "source": "site",
        "warned": 100,
    }
    assert body["events"]["used"] == 5
    rig.clock.set(month_end(now) + 1)
    later = (await rig.client.get(url, headers=ADMIN)).json()
    assert later["month"] == month_of(rig.clock.now()) != month_of(now)
    assert later["events"]["used"] == 0 and later["intents"]["used"] == 0
    assert later["history"] == [{"month": month_of(now), "events": 5, "intents": 3}]
    reset = datetime.fromisoformat(later["reset_at"])
    assert reset.timestamp() == month_end(rig.clock.now()) and reset.day == 1
    # A made-up session: not signed in.
    assert (await rig.client.get(url, headers=bearer("nope"))).status_code == 401
