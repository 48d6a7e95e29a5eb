"""The dashboard counted from raw rows: KPIs, timelines in local time across DST, breakdowns,
the intent ledger's filters and cursor pages, and one session's timeline."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.errors import NotFound, ValidationFailed
from service.db import Database
from service.errors import ApiError
from service.tracking.dashboard import (
    SiteView,
    breakdown,
    kpis,
    open_bounds,
    period_of,
    timeline,
)
from service.tracking.dashboard_ledger import (
    LedgerFilter,
    decode_cursor,
    encode_cursor,
    ledger_page,
    one_intent,
)
from service.tracking.dashboard_sessions import session_timeline
from service.tracking.dashboard_time import Period, bucket_slots, day_start, offset_segments
from service.tracking.rollups_horizon import Horizon
from service.tracking.scope import SiteScope
from tests.tracking.dashboard_seed import (
    Seeded,
    add_event,
    add_intent,
    add_session,
    at,
    make_site,
    seed_istanbul,
    view_at,
)

NOW = at("2026-11-20 12:00")
BERLIN = ZoneInfo("Europe/Berlin")


def _period(seeded: Seeded, first: str, last: str) -> Period:
    return Period(
        date.fromisoformat(first), date.fromisoformat(last), ZoneInfo(seeded.site.time_zone)
    )


async def test_kpis_of_a_local_day(database: Database) -> None:
    site, _ = await seed_istanbul(database)
    view = view_at(site, NOW)
    async with database.connect() as conn:
        day = await kpis(conn, view, _period(site, "2026-11-10", "2026-11-10"))
        three = await kpis(conn, view, _period(site, "2026-11-09", "2026-11-11"))
    assert day["totals"] == {
        "sessions": 3,
        "visitors": 3,
        "page_views": 8,
        "ads_sessions": 1,
        "intents": {"phone": 2, "whatsapp": 2, "total": 4},
        "sales": 2,
        "sales_value": "100.50",  # the USD sale is a sale, but not in the site's currency
    }
    assert day["ads"] == {
        "sessions": 1,
        "visitors": 1,
        "page_views": 3,
        "ads_sessions": 1,
        "intents": {"phone": 1, "whatsapp": 0, "total": 1},
        "sales": 1,
        "sales_value": "100.50",
    }
    assert (day["raw_days"], day["rollup_days"], day["visitors_exact"]) == (
        {"from": "2026-11-10", "to": "2026-11-10"},
        None,
        True,
    )
    assert (day["time_zone"], day["currency"]) == ("Europe/Istanbul", "TRY")
    totals = three["totals"]
    # v1 and v2 came back on other days: visitors are distinct over the whole range.
    assert (totals["sessions"], totals["visitors"], totals["page_views"]) == (5, 3, 11)
    assert totals["intents"] == {"phone": 3, "whatsapp": 2, "total": 5}


async def test_day_timeline_buckets_are_local_days(database: Database) -> None:
    site, _ = await seed_istanbul(database)
    async with database.connect() as conn:
        found = await timeline(
            conn, view_at(site, NOW), _period(site, "2026-11-08", "2026-11-11"), "day",
            ads_only=False,
        )  # fmt: skip
        ads = await timeline(
            conn, view_at(site, NOW), _period(site, "2026-11-09", "2026-11-11"), "day",
            ads_only=True,
        )  # fmt: skip
    starts = [b["start"] for b in found["buckets"]]
    assert starts == [f"2026-11-{d:02d}T00:00:00+03:00" for d in (8, 9, 10, 11)]
    assert [b["sessions"] for b in found["buckets"]] == [0, 1, 3, 1]
    assert [b["intents"]["total"] for b in found["buckets"]] == [0, 1, 4, 0]
    assert [b["sessions"] for b in ads["buckets"]] == [0, 1, 0]
    assert ads["buckets"][1]["sales_value"] == "100.50"


async def test_breakdowns_rank_values_and_sum_the_rest(database: Database) -> None:
    site, _ = await seed_istanbul(database)
    view = view_at(site, NOW)
    day = _period(site, "2026-11-10", "2026-11-10")
    async with database.connect() as conn:
        sources = await breakdown(conn, view, day, "source", 1)
        devices = await breakdown(conn, view, day, "device", 10)
        countries = await breakdown(conn, view, day, "country", 10)
        landing = await breakdown(conn, view, day, "landing", 10)
    # One session each; "none" leads by intents (the direct session's two, the sessionless one).
    assert sources["values"] == 3
    assert [(r["value"], r["sessions"], r["intents"]["total"]) for r in sources["rows"]] == [
        (None, 1, 3)
    ]
    assert sources["other"] is not None
    assert (sources["other"]["values"], sources["other"]["sessions"]) == (2, 2)
    assert sources["other"]["intents"]["total"] == 1
    assert sources["other"]["sales_value"] == "100.50"
    rows = {r["value"]: r for r in devices["rows"]}
    assert set(rows) == {"mobile", "desktop", "tablet", None}
    assert rows["mobile"]["ads_sessions"] == 1 and rows["mobile"]["sales"] == 1
    assert rows[None]["sessions"] == 0 and rows[None]["intents"]["phone"] == 1
    assert devices["other"] is None
    assert {r["value"]: r["sessions"] for r in countries["rows"]} == {"TR": 1, "DE": 1, None: 1}
    assert {r["value"] for r in landing["rows"]} == {"/a", "/b", "/c", None}


async def test_hour_and_day_buckets_across_dst(database: Database) -> None:
    async with database.begin() as conn:
        site = await make_site(conn, zone="Europe/Berlin", currency="EUR")
        for instant in ("2026-10-24 21:59", "2026-10-25 00:30", "2026-10-25 01:30"):
            await add_session(conn, site.scope, at(instant))
        for instant in ("2026-03-28 22:59", "2026-03-28 23:00", "2026-03-29 01:00"):
            await add_session(conn, site.scope, at(instant))
    view = view_at(site, NOW)
    async with database.connect() as conn:
        autumn = await timeline(
            conn, view, _period(site, "2026-10-25", "2026-10-25"), "hour", ads_only=False
        )
        spring = await timeline(
            conn, view, _period(site, "2026-03-29", "2026-03-29"), "hour", ads_only=False
        )
        days = await timeline(
            conn, view, _period(site, "2026-10-24", "2026-10-25"), "day", ads_only=False
        )
    # The day clocks go back has 25 hours, 02:00 twice (summer time, then winter time).
    hours = autumn["buckets"]
    assert len(hours) == 25
    assert [b["start"] for b in hours[1:5]] == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    assert [b["sessions"] for b in hours[2:4]] == [1, 1]
    assert sum(b["sessions"] for b in hours) == 2
    # The day they go forward has 23 hours and no 02:00.
    spring_hours = spring["buckets"]
    assert len(spring_hours) == 23
    assert [b["start"][11:] for b in spring_hours[1:3]] == ["01:00:00+01:00", "03:00:00+02:00"]
    assert [b["sessions"] for b in spring_hours[:3]] == [1, 0, 1]
    assert [(b["start"], b["sessions"]) for b in days["buckets"]] == [
        ("2026-10-24T00:00:00+02:00", 1),
        ("2026-10-25T00:00:00+02:00", 2),
    ]


async def test_half_hour_zones_bucket_on_their_own_hours(database: Database) -> None:
    async with database.begin() as conn:
        site = await make_site(conn, zone="Asia/Kolkata", currency="INR")
        await add_session(conn, site.scope, at("2026-11-10 18:29"))  # 23:59 IST
        await add_session(conn, site.scope, at("2026-11-10 18:30"))  # 00:00 IST, next day
    view = view_at(site, NOW)
    async with database.connect() as conn:
        days = await timeline(
            conn, view, _period(site, "2026-11-10", "2026-11-11"), "day", ads_only=False
        )
        hours = await timeline(
            conn, view, _period(site, "2026-11-10", "2026-11-10"), "hour", ads_only=False
        )
    assert [b["sessions"] for b in days["buckets"]] == [1, 1]
    assert hours["buckets"][-1]["start"] == "2026-11-10T23:00:00+05:30"
    assert hours["buckets"][-1]["sessions"] == 1


def test_dst_transitions_and_local_day_bounds() -> None:
    segments = offset_segments(BERLIN, at("2026-01-01 00:00"), at("2027-01-01 00:00"))
    assert segments == [
        (at("2026-01-01 00:00"), 3600),
        (at("2026-03-29 01:00"), 7200),
        (at("2026-10-25 01:00"), 3600),
    ]
    assert day_start(date(2026, 10, 25), BERLIN) == at("2026-10-24 22:00")
    period = Period(date(2026, 10, 25), date(2026, 10, 25), BERLIN)
    assert period.end - period.start == timedelta(hours=25)
    assert len(bucket_slots(Period(date(2026, 3, 29), date(2026, 3, 29), BERLIN), "hour")) == 23
    # A zone whose midnight is skipped: the day starts at the transition.
    havana = ZoneInfo("America/Havana")
    start = day_start(date(2026, 3, 8), havana)
    assert start.astimezone(havana).hour == 1


def test_ranges_are_validated_in_words_the_api_documents() -> None:
    view = view_at_zone("UTC")
    assert period_of(view, None, None) == Period(
        date(2026, 10, 22), date(2026, 11, 20), ZoneInfo("UTC")
    )
    with pytest.raises(ValidationFailed, match="'from' is not after 'to'"):
        period_of(view, date(2026, 2, 2), date(2026, 2, 1))
    with pytest.raises(ValidationFailed, match="at most 3660 days"):
        period_of(view, date(2000, 1, 1), date(2026, 1, 1))
    with pytest.raises(ValidationFailed, match="dates lie between"):
        period_of(view, date(1999, 12, 31), None)
    with pytest.raises(ValidationFailed, match="'from' is not after 'to'"):
        open_bounds(view, date(2026, 2, 2), date(2026, 2, 1))
    assert open_bounds(view, None, date(2026, 2, 1)) == (None, at("2026-02-02 00:00"))


def view_at_zone(zone: str) -> SiteView:
    scope = SiteScope(site_id=1, role="admin", actor="admin:t", time_zone=zone)
    tz = ZoneInfo(zone)
    return SiteView(scope, tz, Horizon.of(at("2000-01-01 00:00"), 0, tz), date(2026, 11, 20))


async def test_hour_buckets_are_limited(database: Database) -> None:
    site, _ = await seed_istanbul(database)
    async with database.connect() as conn:
        with pytest.raises(ValidationFailed, match="hour buckets cover at most 31 days"):
            await timeline(
                conn, view_at(site, NOW), _period(site, "2026-01-01", "2026-03-01"), "hour",
                ads_only=False,
            )  # fmt: skip


# ---------------------------------------------------------------- ledger


async def test_ledger_pages_are_stable_under_inserts(database: Database) -> None:
    base = at("2026-11-01 10:00")
    async with database.begin() as conn:
        site = await make_site(conn)
        session = await add_session(conn, site.scope, base, gclid="gc")
        for n in range(23):
            # Pairs share a creation instant: the id breaks the tie.
            await add_intent(conn, site.scope, session, base + timedelta(minutes=n // 2))
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        async with database.connect() as conn:
            page = await ledger_page(conn, site.scope, LedgerFilter(), limit=5, cursor=cursor)
        seen += [item["id"] for item in page["items"]]
        pages += 1
        if pages == 2:
            # Newer intents, and one tied with the newest: none shows up on later pages.
            async with database.begin() as conn:
                await add_intent(conn, site.scope, session, base + timedelta(hours=5))
                await add_intent(conn, site.scope, session, base + timedelta(minutes=11))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    async with database.connect() as conn:
        everything = await ledger_page(conn, site.scope, LedgerFilter(), limit=200)
    ordered = [item["id"] for item in everything["items"]]
    assert len(seen) == len(set(seen)) == 23
    assert seen == [i for i in ordered if i in set(seen)]
    created = [item["created_at"] for item in everything["items"]]
    assert created == sorted(created, reverse=True)
    first = everything["items"][0]
    assert first["session"]["gclid"] == "gc" and first["session"]["id"] == session


async def test_ledger_filters(database: Database) -> None:
    site, ids = await seed_istanbul(database)

    async def listed(**kwargs: object) -> set[int]:
        async with database.connect() as conn:
            page = await ledger_page(conn, site.scope, LedgerFilter(**kwargs), limit=50)  # type: ignore[arg-type]
        return {item["id"] for item in page["items"]}

    everything = {ids[k] for k in ("i1", "i2", "i3", "i5", "i6")}  # i4 is deleted
    assert await listed() == everything
    assert await listed(status="confirmed") == {ids["i1"], ids["i3"]}
    assert await listed(kind="whatsapp") == {ids["i2"], ids["i3"]}
    assert await listed(status="confirmed", kind="phone") == {ids["i1"]}
    assert await listed(ads_only=True) == {ids["i1"]}
    view = view_at(site, NOW)
    start, end = open_bounds(view, date(2026, 11, 10), date(2026, 11, 10))
    assert await listed(start=start, end=end) == everything - {ids["i6"]}
    async with database.connect() as conn:
        one = await one_intent(conn, site.scope, ids["i1"])
        lone = await one_intent(conn, site.scope, ids["i5"])
        with pytest.raises(NotFound):
            await one_intent(conn, site.scope, ids["i4"])  # deleted
    assert (one["amount"], one["currency"], one["status"]) == ("100.50", "TRY", "confirmed")
    assert one["click_ids"]["gclid"] == "g1"
    assert one["session"]["device"] == "mobile" and one["session"]["landing_page"] == "/a"
    assert lone["session"] is None


def test_cursors_are_exact_and_refuse_anything_else() -> None:
    instant = datetime(2026, 11, 10, 9, 0, 0, 123457, tzinfo=UTC)
    assert decode_cursor(encode_cursor(instant, 42)) == (instant, 42)
    for bad in ("x", "!!!!", "MTox" + "A" * 70):
        with pytest.raises(ApiError) as caught:
            decode_cursor(bad)
        assert caught.value.status == 400


async def test_another_sites_ids_are_not_found(database: Database) -> None:
    _, ids = await seed_istanbul(database)
    async with database.begin() as conn:
        other = await make_site(conn, name="B")
    async with database.connect() as conn:
        with pytest.raises(NotFound):
            await one_intent(conn, other.scope, ids["i1"])
        with pytest.raises(NotFound):
            await session_timeline(conn, other.scope, ids["s2"])
        page = await ledger_page(conn, other.scope, LedgerFilter(), limit=50)
    assert page == {"items": [], "next_cursor": None}


# ---------------------------------------------------------------- one session


async def test_session_timeline_lists_its_events_in_order(database: Database) -> None:
    async with database.begin() as conn:
        site = await make_site(conn)
        other = await make_site(conn, name="B")
        session = await add_session(conn, site.scope, at("2026-11-10 10:00"), gclid="gx")
        late = await add_event(conn, site.scope, session, at("2026-11-10 10:05"), path="/b")
        early = await add_event(conn, site.scope, session, at("2026-11-10 10:00"), path="/a")
        # Same session id under another site (a forged row): not this session's.
        await add_event(conn, other.scope, session, at("2026-11-10 10:01"))
        intent = await add_intent(conn, site.scope, session, at("2026-11-10 10:06"))
    async with database.connect() as conn:
        found = await session_timeline(conn, site.scope, session)
        truncated = await session_timeline(conn, site.scope, session, limit=1)
    assert [e["id"] for e in found["events"]] == [early, late]
    assert found["events"][0]["props"] == {"n": 1}
    assert found["click_ids"]["gclid"] == "gx" and not found["events_truncated"]
    assert [i["id"] for i in found["intents"]] == [intent]
    assert truncated["events_truncated"] and len(truncated["events"]) == 1
