"""What the dashboard counts, and the two raw queries that count it.

Every figure the dashboard shows is one ``Metrics``: a site's sessions (with their distinct
visitors and page views) and its intents (by kind, with confirmed sales and their value), plus
the same restricted to ads traffic. The daily rollups store exactly these columns, so a day read
from ``track_daily`` and the same day counted from raw rows give the same figures.

Definitions (the same for raw rows and rollups):

- sessions, visitors and page views count the sessions that *started* in the range; a session's
  page views are its ``page_views`` counter (so events are never scanned for a dashboard);
- intents and sales count the intents *created* in the range (not deleted), whatever their
  status; a sale is a ``confirmed`` intent, and its value sums the amounts sealed in the site's
  currency;
- ads traffic: sessions with a click id (``gclid``, ``wbraid`` or ``gbraid``), and intents that
  carry one or whose session does;
- a breakdown value of a dimension comes from the session (an intent's from its session), with
  ``''`` for "none" (no source, no country, or an intent without a session); landing pages are
  cut to ``VALUE_LENGTH`` characters, the width of a rollup value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from service.db.tables.tracking import track_intents, track_sessions
from service.tracking.scope import SiteScope, where_site

Dimension = Literal["source", "device", "landing", "country"]
DIMENSIONS: tuple[Dimension, ...] = ("source", "device", "landing", "country")
#: Width of ``track_daily.value``: longer landing pages are cut, raw and rolled up alike.
VALUE_LENGTH = 191
CENTS = Decimal("0.01")
Key = tuple[Any, ...]


def money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENTS)


@dataclass(slots=True)
class Metrics:
    """The figures of one range, bucket or breakdown value (``track_daily``'s columns)."""

    sessions: int = 0
    visitors: int = 0
    page_views: int = 0
    ads_sessions: int = 0
    phone_intents: int = 0
    whatsapp_intents: int = 0
    sales: int = 0
    sales_value: Decimal = field(default_factory=lambda: Decimal("0.00"))

    def add(self, other: Metrics) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def copy(self) -> Metrics:
        return Metrics(**{f.name: getattr(self, f.name) for f in fields(self)})

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "visitors": self.visitors,
            "page_views": self.page_views,
            "ads_sessions": self.ads_sessions,
            "intents": {
                "phone": self.phone_intents,
                "whatsapp": self.whatsapp_intents,
                "total": self.phone_intents + self.whatsapp_intents,
            },
            "sales": self.sales,
            "sales_value": str(money(self.sales_value)),
        }


@dataclass(slots=True)
class Aggregate:
    """One key's figures from raw rows: all traffic, and ads traffic alone."""

    all: Metrics = field(default_factory=Metrics)
    ads: Metrics = field(default_factory=Metrics)


def session_has_click() -> ColumnElement[bool]:
    s = track_sessions.c
    return or_(s.gclid.is_not(None), s.wbraid.is_not(None), s.gbraid.is_not(None))


def intent_has_click() -> ColumnElement[bool]:
    """An intent of ads traffic: its own click id, or its session's (outer-joined)."""
    i = track_intents.c
    return or_(
        i.gclid.is_not(None), i.wbraid.is_not(None), i.gbraid.is_not(None), session_has_click()
    )


def dimension_key(dimension: Dimension) -> ColumnElement[str]:
    """A session's value of ``dimension`` as breakdowns and rollups group it."""
    s = track_sessions.c
    column: ColumnElement[Any] = {
        "source": s.source,
        "device": s.device,
        "landing": func.substr(s.landing_page, 1, VALUE_LENGTH),
        "country": s.country,
    }[dimension]
    return func.coalesce(column, "")


def intents_with_sessions() -> Any:
    """Intents outer-joined to their session (of the same site)."""
    i, s = track_intents.c, track_sessions.c
    return track_intents.outerjoin(
        track_sessions, and_(s.site_id == i.site_id, s.id == i.session_id)
    )


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def session_figures(
    conn: AsyncConnection,
    scope: SiteScope,
    start: datetime,
    end: datetime,
    keys: Sequence[ColumnElement[Any]] = (),
) -> dict[Key, Aggregate]:
    """Sessions started in ``[start, end)``, grouped by ``keys`` (none: one total)."""
    s = track_sessions.c
    ads = session_has_click()
    query = (
        select(
            *keys,
            func.count(),
            func.count(func.distinct(s.visitor_id)),
            func.coalesce(func.sum(s.page_views), 0),
            _count_if(ads),
            func.count(func.distinct(case((ads, s.visitor_id)))),
            func.coalesce(func.sum(case((ads, s.page_views), else_=0)), 0),
        )
        .where(where_site(track_sessions, scope), s.started_at >= start, s.started_at < end)
        .group_by(*keys)
    )
    found: dict[Key, Aggregate] = {}
    width = len(keys)
    for row in await conn.execute(query):
        sessions, visitors, views, ads_sessions, ads_visitors, ads_views = (
            int(v or 0) for v in row[width:]
        )
        if not sessions and not width:
            continue
        aggregate = found.setdefault(tuple(row[:width]), Aggregate())
        aggregate.all.sessions, aggregate.all.visitors = sessions, visitors
        aggregate.all.page_views, aggregate.all.ads_sessions = views, ads_sessions
        aggregate.ads.sessions, aggregate.ads.visitors = ads_sessions, ads_visitors
        aggregate.ads.page_views, aggregate.ads.ads_sessions = ads_views, ads_sessions
    return found


async def intent_figures(
    conn: AsyncConnection,
    scope: SiteScope,
    start: datetime,
    end: datetime,
    keys: Sequence[ColumnElement[Any]] = (),
) -> dict[Key, Aggregate]:
    """Intents created in ``[start, end)``, grouped by ``keys`` (over the intent and its
    outer-joined session)."""
    i = track_intents.c
    ads = intent_has_click()
    phone, whatsapp = i.kind == "phone", i.kind == "whatsapp"
    sale = i.status == "confirmed"
    valued = and_(sale, or_(i.currency.is_(None), i.currency == scope.currency))
    value = func.coalesce(func.sum(case((valued, i.amount), else_=0)), 0)
    ads_value = func.coalesce(func.sum(case((and_(valued, ads), i.amount), else_=0)), 0)
    query = (
        select(
            *keys,
            _count_if(phone),
            _count_if(whatsapp),
            _count_if(sale),
            value,
            _count_if(and_(ads, phone)),
            _count_if(and_(ads, whatsapp)),
            _count_if(and_(ads, sale)),
            ads_value,
        )
        .select_from(intents_with_sessions())
        .where(
            where_site(track_intents, scope),
            i.created_at >= start,
            i.created_at < end,
            i.deleted_at.is_(None),
        )
        .group_by(*keys)
    )
    found: dict[Key, Aggregate] = {}
    width = len(keys)
    for row in await conn.execute(query):
        phones, chats, sales, _, ads_phones, ads_chats, ads_sales, _ = (
            int(v or 0) for v in row[width:]
        )
        aggregate = found.setdefault(tuple(row[:width]), Aggregate())
        aggregate.all.phone_intents, aggregate.all.whatsapp_intents = phones, chats
        aggregate.all.sales, aggregate.all.sales_value = sales, money(row[width + 3])
        aggregate.ads.phone_intents, aggregate.ads.whatsapp_intents = ads_phones, ads_chats
        aggregate.ads.sales, aggregate.ads.sales_value = ads_sales, money(row[width + 7])
    return found


def merge(*parts: dict[Key, Aggregate]) -> dict[Key, Aggregate]:
    """Session and intent figures of the same keys, side by side (their fields are disjoint)."""
    merged: dict[Key, Aggregate] = {}
    for part in parts:
        for key, aggregate in part.items():
            target = merged.setdefault(key, Aggregate())
            target.all.add(aggregate.all)
            target.ads.add(aggregate.ads)
    return merged
