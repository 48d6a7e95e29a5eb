# ruff: noqa: F811  (fixtures imported from tests/tracking/people_rig.py are redefined as parameters)
"""The purge of the tracking trash, over SQLite and MariaDB: after the retention period a
deleted site goes with every row of every site-scoped table, and a deleted intent with its
upload state; nothing goes before; the work is batched, resumes where a spent budget stopped
it, is idempotent, and audits each item once even when two processes purge at once."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select

from service.db.tables.ads import ads_attempts, ads_connections, ads_uploads
from service.db.tables.tracking import (
    SITE_SCOPED,
    site_members,
    sites,
    track_calls,
    track_daily,
    track_event_ids,
    track_events,
    track_idempotency,
    track_intents,
    track_usage,
)
from service.tracking.maintenance_retention import Budget
from service.tracking.scope import SiteScope
from service.tracking.trash_job import TrashPurge
from service.tracking.trash_purge import Purged, purge_intents, purge_site
from service.tracking.trash_window import purge_cutoff
from tests.tracking.people_rig import ADMIN, Rig, make_rig, rig, stack  # noqa: F401

DAY = 86_400.0
PERIOD = 30
SPENT = Budget(lambda: 1.0, 0.0)  # stops after the first batch


def _ample() -> Budget:
    return Budget(lambda: 0.0, 1e9)


async def _seed(rig: Rig, site_id: int, *, sessions: int = 1) -> dict[str, int]:
    """A row in every site-scoped table; the site's intent ids."""
    now = rig.now()
    await rig.member(site_id, f"member-{site_id}@example.com", "viewer")
    session = 0
    for _ in range(sessions):
        session = await rig.tracking_session(site_id)
    intent = await rig.intent(site_id, session_id=session)
    async with rig.db.begin() as conn:
        await conn.execute(
            insert(track_events).values(
                site_id=site_id,
                session_id=session,
                event_id=f"ev-{site_id}",
                kind="page_view",
                occurred_at=now,
                received_at=now,
            )
        )
        await conn.execute(
            insert(track_event_ids).values(
                site_id=site_id, event_id=f"ev-{site_id}", received_at=now
            )
        )
        await conn.execute(
            insert(track_idempotency).values(
                site_id=site_id, key="k", request_hash="h", status=200, body={}, created_at=now
            )
        )
        await conn.execute(insert(track_usage).values(site_id=site_id, month="2026-05", events=1))
        await conn.execute(
            insert(track_daily).values(
                site_id=site_id, day=date(2026, 5, 1), dimension="all", value=""
            )
        )
        await conn.execute(
            insert(track_calls).values(
                site_id=site_id,
                caller="+905321234567",
                called_at=now,
                intent_id=intent,
                received_at=now,
            )
        )
        await conn.execute(
            insert(ads_connections).values(
                site_id=site_id,
                customer_id="1234567890",
                conversion_action="customers/1234567890/conversionActions/1",
                token_ciphertext="sealed",
                status="active",
                generation=1,
                connected_by="admin:test",
                created_at=now,
                updated_at=now,
            )
        )
        await _upload(conn, site_id, intent, now)
    return {"intent": intent, "session": session}


async def _upload(conn: Any, site_id: int, intent: int, now: Any) -> None:
    await conn.execute(
        insert(ads_uploads).values(
            site_id=site_id,
            intent_id=intent,
            status="uploaded",
            order_id=f"kervan-{site_id}-{intent}",
            conversion_at=now,
            value=Decimal("10.00"),
            currency="TRY",
            attempts=1,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    await conn.execute(
        insert(ads_attempts).values(
            site_id=site_id, intent_id=intent, kind="row", outcome="done", at=now
        )
    )


async def _counts(rig: Rig, site_id: int) -> dict[str, int]:
    found: dict[str, int] = {}
    async with rig.db.connect() as conn:
        for table in SITE_SCOPED:
            query = select(func.count()).select_from(table).where(table.c.site_id == site_id)
            found[table.name] = int((await conn.execute(query)).scalar_one())
        query = select(func.count()).select_from(sites).where(sites.c.id == site_id)
        found["sites"] = int((await conn.execute(query)).scalar_one())
    return found


def _job(rig: Rig) -> TrashPurge:
    return rig.runtime.facility(TrashPurge)


async def test_a_deleted_site_goes_with_all_its_data_after_the_period_only(rig: Rig) -> None:
    gone = (await rig.site("Gone"))["id"]
    kept = (await rig.site("Kept"))["id"]
    await _seed(rig, gone)
    await _seed(rig, kept)
    seeded = await _counts(rig, gone)
    empty = [name for name, count in seeded.items() if not count]
    assert not empty, f"seed a row of every site-scoped table: {empty}"
    kept_before = await _counts(rig, kept)
    assert (await rig.client.delete(f"/t/sites/{gone}", headers=ADMIN)).status_code == 200

    rig.clock.advance(PERIOD * DAY - 1)
    early = await _job(rig).run_once()
    assert (early.sites, early.intents, early.complete) == (0, 0, True)
    assert await _counts(rig, gone) == seeded

    rig.clock.advance(1)
    purged = await _job(rig).run_once()
    assert (purged.sites, purged.complete) == (1, True)
    assert set(await _counts(rig, gone)) == {*(t.name for t in SITE_SCOPED), "sites"}
    assert not any((await _counts(rig, gone)).values())
    assert await _counts(rig, kept) == kept_before
    [record] = await rig.audit("site.purged")
    assert record["subject"] == f"site:{gone}" and record["actor"] == "system:trash"
    assert record["details"]["site_id"] == gone
    assert record["details"]["rows"]["track_sessions"] == 1
    listed = await rig.client.get("/admin/trash/sites", headers=ADMIN)
    assert listed.json()["items"] == []
    restore = await rig.client.post(f"/t/sites/{gone}/restore", headers=ADMIN)
    assert restore.status_code == 404

    again = await _job(rig).run_once()  # idempotent: nothing left, nothing audited twice
    assert not again.did_something
    assert len(await rig.audit("site.purged")) == 1


async def test_a_site_purge_is_batched_and_resumes(rig: Rig) -> None:
    site = (await rig.site("Big"))["id"]
    await _seed(rig, site, sessions=5)
    assert (await rig.client.delete(f"/t/sites/{site}", headers=ADMIN)).status_code == 200
    now = rig.now() + timedelta(days=PERIOD)
    cutoff = purge_cutoff(now, PERIOD)

    first = Purged()
    assert not await purge_site(rig.db, site, now, cutoff, SPENT, first, batch=2)
    assert first.complete is False
    assert first.rows["track_sessions"] == 2  # one batch, then the budget stopped it
    left = await _counts(rig, site)
    assert (left["track_sessions"], left["sites"]) == (3, 1)
    assert await rig.audit("site.purged") == []

    second = Purged()
    assert await purge_site(rig.db, site, now, cutoff, _ample(), second, batch=2)
    assert second.rows["track_sessions"] == 3
    assert not any((await _counts(rig, site)).values())
    third = Purged()
    assert not await purge_site(rig.db, site, now, cutoff, _ample(), third, batch=2)
    assert len(await rig.audit("site.purged")) == 1


async def test_a_restored_site_is_not_purged(rig: Rig) -> None:
    site = (await rig.site("Back"))["id"]
    await _seed(rig, site)
    assert (await rig.client.delete(f"/t/sites/{site}", headers=ADMIN)).status_code == 200
    assert (await rig.client.post(f"/t/sites/{site}/restore", headers=ADMIN)).status_code == 200
    before = await _counts(rig, site)
    rig.clock.advance(10 * PERIOD * DAY)
    await _job(rig).run_once()
    assert await _counts(rig, site) == before


async def _deleted_intents(rig: Rig, site_id: int, count: int) -> list[int]:
    ids = []
    for n in range(count):
        intent = await rig.intent(site_id, target=f"tel:+90555000000{n}")
        answer = await rig.client.delete(f"/t/sites/{site_id}/intents/{intent}", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        ids.append(intent)
    return ids


async def test_deleted_intents_go_with_their_uploads_after_the_period(rig: Rig) -> None:
    site = (await rig.site("Shop"))["id"]
    seeded = await _seed(rig, site)  # its intent has an upload, an attempt and a call
    live = await rig.intent(site, target="tel:+905551234567")
    answer = await rig.client.delete(f"/t/sites/{site}/intents/{seeded['intent']}", headers=ADMIN)
    assert answer.status_code == 200
    rig.clock.advance(DAY)
    [recent] = await _deleted_intents(rig, site, 1)  # deleted a day later

    rig.clock.advance(PERIOD * DAY - DAY)
    purged = await _job(rig).run_once()
    assert purged.intents == 1
    assert await rig.intent_row(site, seeded["intent"]) is None
    assert (await rig.intent_row(site, recent)).deleted_at is not None
    assert (await rig.intent_row(site, live)).deleted_at is None
    counts = await _counts(rig, site)
    assert (counts["ads_uploads"], counts["ads_attempts"], counts["track_calls"]) == (0, 0, 1)
    async with rig.db.connect() as conn:
        query = select(track_calls.c.intent_id).where(track_calls.c.site_id == site)
        assert (await conn.execute(query)).scalar_one() is None  # the call stays, unmatched
    [record] = await rig.audit("intent.purged")
    assert record["subject"] == f"site:{site}" and record["details"]["intent"] == seeded["intent"]
    trash = await rig.client.get(f"/t/sites/{site}/trash", headers=ADMIN)
    assert [i["id"] for i in trash.json()["items"]] == [recent]

    rig.clock.advance(DAY)
    assert (await _job(rig).run_once()).intents == 1
    assert await rig.intent_row(site, recent) is None
    assert (await rig.intent_row(site, live)).deleted_at is None


async def test_an_intent_purge_is_batched_idempotent_and_audits_each_once(rig: Rig) -> None:
    site = (await rig.site("Shop"))["id"]
    ids = await _deleted_intents(rig, site, 5)
    scope = SiteScope(site_id=site, role="admin", actor="test")
    now = rig.now() + timedelta(days=PERIOD)
    cutoff = purge_cutoff(now, PERIOD)

    first = Purged()
    assert not await purge_intents(rig.db, scope, now, cutoff, SPENT, first, batch=2)
    assert (first.intents, first.complete) == (2, False)
    rest = Purged()
    assert await purge_intents(rig.db, scope, now, cutoff, _ample(), rest, batch=2)
    assert rest.intents == 3
    again = Purged()
    assert await purge_intents(rig.db, scope, now, cutoff, _ample(), again, batch=2)
    assert again.intents == 0
    audited = sorted(r["details"]["intent"] for r in await rig.audit("intent.purged"))
    assert audited == ids


async def test_two_purges_at_once_remove_and_audit_each_intent_once(rig: Rig) -> None:
    site = (await rig.site("Shop"))["id"]
    ids = await _deleted_intents(rig, site, 6)
    scope = SiteScope(site_id=site, role="admin", actor="test")
    now = rig.now() + timedelta(days=PERIOD)
    cutoff = purge_cutoff(now, PERIOD)
    results = [Purged(), Purged()]
    await asyncio.gather(
        *(
            purge_intents(rig.db, scope, now, cutoff, _ample(), purged, batch=2)
            for purged in results
        )
    )
    assert sum(p.intents for p in results) == 6
    audited = sorted(r["details"]["intent"] for r in await rig.audit("intent.purged"))
    assert audited == ids
    async with rig.db.connect() as conn:
        query = (
            select(func.count()).select_from(track_intents).where(track_intents.c.site_id == site)
        )
        assert (await conn.execute(query)).scalar_one() == 0


async def test_people_and_the_audit_log_outlive_a_purged_site(rig: Rig) -> None:
    site = (await rig.site("Gone"))["id"]
    await _seed(rig, site)
    assert (await rig.client.delete(f"/t/sites/{site}", headers=ADMIN)).status_code == 200
    rig.clock.advance(PERIOD * DAY)
    await _job(rig).run_once()
    assert len(await rig.audit("site.deleted")) == 1  # the history of the site stays
    async with rig.db.connect() as conn:
        members = (
            select(func.count()).select_from(site_members).where(site_members.c.site_id == site)
        )
        assert (await conn.execute(members)).scalar_one() == 0
    # The member is still a person who may belong to other sites.
    other = (await rig.site("Other"))["id"]
    assert (await rig.member(other, f"member-{site}@example.com", "viewer"))["new_person"] is False
