"""Rows for dashboard, rollup and retention tests, inserted directly (each with its site's
scope), so these tests do not depend on the ingest."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db import Database
from service.db.tables.tracking import (
    people,
    site_members,
    track_events,
    track_intents,
    track_sessions,
)
from service.tracking.dashboard import SiteView
from service.tracking.dashboard_time import local_date
from service.tracking.rollups_horizon import Horizon
from service.tracking.scope import SiteScope, site_values
from service.tracking.sites import Site, create_site

CREATED = datetime(2025, 1, 1, tzinfo=UTC)
_serial = itertools.count(1)


def at(text: str) -> datetime:
    """``"2026-10-25 00:30"`` in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


@dataclass(frozen=True)
class Seeded:
    site: Site
    scope: SiteScope


async def make_site(
    conn: AsyncConnection,
    *,
    zone: str = "Europe/Istanbul",
    currency: str = "TRY",
    config: dict[str, Any] | None = None,
    name: str = "Site",
) -> Seeded:
    site = await create_site(
        conn,
        name=name,
        domains=[f"s{next(_serial)}.example"],
        currency=currency,
        time_zone=zone,
        now=CREATED,
        config=config,
    )
    scope = SiteScope(
        site_id=site.id, role="admin", actor="admin:test", time_zone=zone, currency=currency
    )
    return Seeded(site, scope)


async def add_person(conn: AsyncConnection, site_id: int, role: str = "viewer") -> int:
    person = _id(
        await conn.execute(
            insert(people).values(
                email=f"p{next(_serial)}@example.com", name="P", language="en", created_at=CREATED
            )
        )
    )
    await conn.execute(
        insert(site_members).values(
            site_id=site_id, person_id=person, role=role, created_at=CREATED, updated_at=CREATED
        )
    )
    return person


async def add_session(
    conn: AsyncConnection,
    scope: SiteScope,
    started_at: datetime,
    *,
    visitor: str | None = None,
    page_views: int = 1,
    source: str | None = "google",
    device: str = "desktop",
    landing: str | None = "/",
    country: str | None = "TR",
    gclid: str | None = None,
    wbraid: str | None = None,
) -> int:
    values = site_values(
        scope,
        visitor_id=visitor or f"v_{next(_serial)}",
        started_at=started_at,
        last_seen_at=started_at + timedelta(minutes=5),
        page_views=page_views,
        events=page_views,
        landing_page=landing,
        source=source,
        medium="cpc" if gclid or wbraid else None,
        gclid=gclid,
        wbraid=wbraid,
        device=device,
        country=country,
    )
    result = await conn.execute(insert(track_sessions).values(**values))
    return _id(result)


async def add_event(
    conn: AsyncConnection,
    scope: SiteScope,
    session_id: int,
    occurred_at: datetime,
    *,
    kind: str = "page_view",
    path: str = "/",
    received_at: datetime | None = None,
) -> int:
    values = site_values(
        scope,
        session_id=session_id,
        event_id=f"e{next(_serial):08d}",
        kind=kind,
        path=path,
        occurred_at=occurred_at,
        received_at=received_at or occurred_at,
        props={"n": 1},
    )
    result = await conn.execute(insert(track_events).values(**values))
    return _id(result)


async def add_intent(
    conn: AsyncConnection,
    scope: SiteScope,
    session_id: int | None,
    created_at: datetime,
    *,
    kind: str = "phone",
    status: str = "pending",
    amount: str | None = None,
    currency: str | None = None,
    gclid: str | None = None,
    deleted: bool = False,
) -> int:
    values = site_values(
        scope,
        session_id=session_id,
        kind=kind,
        target="tel:+905551112233" if kind == "phone" else "https://wa.me/905551112233",
        stamp=f"st{next(_serial):08d}",
        gclid=gclid,
        status=status,
        lead_score=10,
        amount=None if amount is None else Decimal(amount),
        currency=currency,
        sealed_at=created_at if status == "confirmed" else None,
        created_at=created_at,
        updated_at=created_at,
        deleted_at=created_at if deleted else None,
    )
    result = await conn.execute(insert(track_intents).values(**values))
    return _id(result)


def view_at(seeded: Seeded, now: datetime, *, raw_from: datetime | None = None) -> SiteView:
    """The site's view at ``now``; ``raw_from``: the instant raw rows are kept from (default:
    far in the past, so every day is counted from raw rows)."""
    zone = ZoneInfo(seeded.site.time_zone)
    cutoff = raw_from or datetime(2000, 1, 1, tzinfo=UTC)
    horizon = Horizon.of(cutoff, 0, zone)
    return SiteView(seeded.scope, zone, horizon, local_date(now, zone))


async def seed_istanbul(database: Database) -> tuple[Seeded, dict[str, int]]:
    """Sessions and intents around the local midnights of 9-11 November (UTC+3)."""
    ids: dict[str, int] = {}
    async with database.begin() as conn:
        site = await make_site(conn)
        s = site.scope
        ids["s1"] = await add_session(conn, s, at("2026-11-09 20:59"), visitor="v1", page_views=2)
        ids["s2"] = await add_session(
            conn, s, at("2026-11-09 21:00"), visitor="v1", page_views=3, device="mobile",
            landing="/a", gclid="g1",
        )  # fmt: skip
        ids["s3"] = await add_session(
            conn, s, at("2026-11-10 12:00"), visitor="v2", source=None, landing="/b",
            country="DE",
        )  # fmt: skip
        ids["s4"] = await add_session(
            conn, s, at("2026-11-10 20:59:59"), visitor="v3", page_views=4, source="facebook",
            device="tablet", landing="/c", country=None,
        )  # fmt: skip
        ids["s5"] = await add_session(conn, s, at("2026-11-10 21:00"), visitor="v2")
        ids["i1"] = await add_intent(
            conn, s, ids["s2"], at("2026-11-10 09:00"), status="confirmed", amount="100.50",
            currency="TRY", gclid="g1",
        )  # fmt: skip
        ids["i2"] = await add_intent(conn, s, ids["s3"], at("2026-11-10 10:00"), kind="whatsapp")
        ids["i3"] = await add_intent(
            conn, s, ids["s3"], at("2026-11-10 11:00"), kind="whatsapp", status="confirmed",
            amount="20", currency="USD",
        )  # fmt: skip
        ids["i4"] = await add_intent(conn, s, ids["s4"], at("2026-11-10 12:00"), deleted=True)
        ids["i5"] = await add_intent(conn, s, None, at("2026-11-10 13:00"), status="junk")
        ids["i6"] = await add_intent(conn, s, ids["s1"], at("2026-11-09 20:00"))
        # Another site's rows on the same days must never count.
        other = await make_site(conn, name="Other")
        other_session = await add_session(conn, other.scope, at("2026-11-10 12:00"))
        await add_intent(conn, other.scope, other_session, at("2026-11-10 12:00"))
    return site, ids
