"""Every query the dashboard (and the maintenance job) issues on MariaDB reads through an index:
the statements are captured while the API answers for a seeded site among busier ones, and
``EXPLAIN`` of each must show no full scan (``type: ALL``) of a tracking table."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, insert, text

from core.clock import ManualClock
from service.db import Database
from service.db.tables.tracking import (
    SITE_SCOPED,
    track_event_ids,
    track_events,
    track_idempotency,
    track_intents,
    track_sessions,
)
from service.settings import Settings
from service.tracking.dashboard_time import Period
from service.tracking.maintenance import TrackingMaintenance
from service.tracking.rollups import roll_days
from tests.conftest import _clear_tables, running_client
from tests.tracking.dashboard_seed import Seeded, at, make_site

KEY = "explain-admin-key"
HEADERS = {"X-API-Key": KEY}
NOW = at("2026-11-20 12:00")
DAYS = 90
TRACKING_TABLES = {table.name for table in SITE_SCOPED}
_TOUCHES = re.compile(r"\b(" + "|".join(sorted(TRACKING_TABLES)) + r")\b")
SOURCES = ["google", "(direct)", "facebook", "bing", "newsletter"]
DEVICES = ["desktop", "mobile", "tablet"]
COUNTRIES = ["TR", "DE", "GB", None]
_DIMENSIONS = ("source", "device", "landing", "country")


async def _traffic(db: Database, site: Seeded, sessions: int, rng: random.Random) -> list[int]:
    """``sessions`` sessions over the last ``DAYS`` days, two events each, an intent for some."""
    scope = site.scope
    rows: list[dict[str, Any]] = []
    for n in range(sessions):
        started = NOW - timedelta(seconds=rng.randrange(DAYS * 86_400))
        rows.append(
            {
                "site_id": scope.site_id,
                "visitor_id": f"v_{rng.randrange(sessions // 2)}",
                "started_at": started,
                "last_seen_at": started + timedelta(minutes=3),
                "page_views": 2,
                "events": 2,
                "landing_page": f"/p/{n % 40}",
                "source": rng.choice(SOURCES),
                "gclid": f"g{n}" if n % 4 == 0 else None,
                "device": rng.choice(DEVICES),
                "country": rng.choice(COUNTRIES),
            }
        )
    async with db.begin() as conn:
        await conn.execute(insert(track_sessions), rows)
        ids = [
            r.id
            for r in await conn.execute(
                text("SELECT id, started_at FROM track_sessions WHERE site_id = :s ORDER BY id"),
                {"s": scope.site_id},
            )
        ]
        events: list[dict[str, Any]] = []
        intents: list[dict[str, Any]] = []
        seen: list[dict[str, Any]] = []
        for session_id, row in zip(ids, rows, strict=True):
            for k in range(2):
                at_ = row["started_at"] + timedelta(seconds=30 * k)
                events.append(
                    {
                        "site_id": scope.site_id,
                        "session_id": session_id,
                        "event_id": f"e{session_id}-{k}",
                        "kind": "page_view",
                        "path": row["landing_page"],
                        "occurred_at": at_,
                        "received_at": at_,
                    }
                )
                # Dedup ids as the job keeps them: the last week, and a day past it to expire.
                recent = NOW - timedelta(seconds=rng.randrange(8 * 86_400))
                seen.append(
                    {
                        "site_id": scope.site_id,
                        "event_id": f"e{session_id}-{k}",
                        "received_at": recent,
                    }
                )
            if session_id % 7 == 0:
                intents.append(
                    {
                        "site_id": scope.site_id,
                        "session_id": session_id,
                        "kind": "phone" if session_id % 2 else "whatsapp",
                        "target": "tel:+905551112233",
                        "stamp": f"s{session_id}",
                        "gclid": row["gclid"],
                        "status": rng.choice(["pending", "confirmed", "junk"]),
                        "lead_score": 5,
                        "amount": 10 if session_id % 3 == 0 else None,
                        "currency": scope.currency,
                        "created_at": row["started_at"] + timedelta(minutes=1),
                        "updated_at": row["started_at"] + timedelta(minutes=1),
                    }
                )
        await conn.execute(insert(track_events), events)
        await conn.execute(insert(track_event_ids), seen)
        await conn.execute(insert(track_intents), intents)
        await conn.execute(
            insert(track_idempotency),
            [
                {
                    "site_id": scope.site_id,
                    "key": f"k{n}",
                    "request_hash": "h",
                    "status": 200,
                    "body": {},
                    "created_at": NOW - timedelta(minutes=3 * n),
                }
                for n in range(600)  # 30 hours: a fifth past the 24-hour window
            ],
        )
    return ids


def _explaining(db: Database, plans: list[tuple[str, list[dict[str, Any]]]]) -> Callable[..., None]:
    """Explain each statement on a tracking table right before it runs, on its own cursor (in
    its transaction, over the rows it is about to read or delete)."""

    def listen(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        head = statement.lstrip().split(None, 1)[0].upper()
        if many or head not in ("SELECT", "DELETE", "UPDATE") or not _TOUCHES.search(statement):
            return
        cursor.execute("EXPLAIN " + statement, parameters)
        names = [column[0] for column in cursor.description]
        plans.append((statement, [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", listen)
    return listen


async def test_no_dashboard_query_scans_a_tracking_table(
    mariadb_url: str, make_settings: Callable[..., Settings]
) -> None:
    # Seeding and explaining lag the loop: degrade mode must not shed the calls under test.
    settings = make_settings(database_url=mariadb_url, admin_api_key=KEY, degrade_mode="off")
    db = Database(mariadb_url)
    await _clear_tables(db)
    rng = random.Random(7)
    async with db.begin() as conn:
        site = await make_site(conn, config={"retention_months": 2})
        others = [await make_site(conn, name=f"Busy {n}") for n in range(3)]
    sessions = await _traffic(db, site, 1500, rng)
    for other in others:
        await _traffic(db, other, 4000, rng)
    zone = site.scope.time_zone
    async with db.begin() as conn:
        days = Period((NOW - timedelta(days=DAYS)).date(), NOW.date(), ZoneInfo(zone))
        await roll_days(conn, site.scope, days)
        for table in TRACKING_TABLES:
            await conn.execute(text(f"ANALYZE TABLE {table}"))
    await db.dispose()

    plans: list[tuple[str, list[dict[str, Any]]]] = []
    async with running_client(settings, clock=ManualClock(NOW.timestamp())) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        listener = _explaining(runtime.db, plans)
        base = f"/t/sites/{site.site.id}"
        today = "2026-11-20"
        month = {"from": "2026-10-22", "to": today}
        quarter = {"from": "2026-08-22", "to": today}  # older days from rollups
        calls: list[tuple[str, dict[str, Any]]] = [
            ("/dashboard/kpis", {"from": today, "to": today}),
            ("/dashboard/kpis", month),
            ("/dashboard/kpis", quarter),
            ("/dashboard/timeline", {**quarter, "bucket": "day"}),
            ("/dashboard/timeline", {**month, "bucket": "day", "ads_only": "true"}),
            ("/dashboard/timeline", {"from": today, "to": today, "bucket": "hour"}),
            *(("/dashboard/breakdown", {**month, "dimension": d}) for d in _DIMENSIONS),
            *(("/dashboard/breakdown", {**quarter, "dimension": d}) for d in _DIMENSIONS),
            ("/intents", {}),
            ("/intents", {"status": "confirmed"}),
            ("/intents", {"kind": "whatsapp"}),
            ("/intents", {"status": "pending", "kind": "phone"}),
            ("/intents", {"ads_only": "true"}),
            ("/intents", {"from": "2026-11-01", "to": "2026-11-10"}),
            (f"/sessions/{sessions[len(sessions) // 2]}", {}),
        ]
        for path, params in calls:
            answer = await client.get(base + path, params=params, headers=HEADERS)
            assert answer.status_code == 200, (path, answer.text)
        page = await client.get(f"{base}/intents", params={"limit": 5}, headers=HEADERS)
        cursor = page.json()["next_cursor"]
        intent_id = page.json()["items"][0]["id"]
        for path, params in (
            ("/intents", {"limit": 5, "cursor": cursor}),
            (f"/intents/{intent_id}", {}),
        ):
            answer = await client.get(base + path, params=params, headers=HEADERS)
            assert answer.status_code == 200, answer.text
        dashboard = len(plans)
        # The maintenance job's statements too (the run at start found nothing to do; this one
        # rolls, expires and deletes in batches).
        job = runtime.facility(TrackingMaintenance)
        for _ in range(200):
            if await job.run_once() is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the maintenance lock was never free")
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", listener)
    scans = [
        f"{statement}\n  -> {row}"
        for statement, plan in plans
        for row in plan
        if row["type"] == "ALL" and row["table"] in TRACKING_TABLES
    ]
    db = Database(mariadb_url)
    await _clear_tables(db)
    await db.dispose()
    assert dashboard > 30
    assert len(plans) > dashboard
    assert not scans, "full table scans:\n\n" + "\n\n".join(scans)
