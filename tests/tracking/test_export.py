"""CSV exports of a site's intents, sessions and conversions (``service.tracking.export``) on
SQLite and MariaDB: the range in the site's local days, deleted rows left out, personal cells
blanked where consent lapsed, formula-safe text end to end, who may export, the audit record,
and a large export streamed in pages and bounded chunks."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, update

from core.errors import Forbidden, NotFound, ValidationFailed
from service.consent import store
from service.consent.policy import policy_from_settings
from service.db import Database
from service.db.tables.ads import ads_uploads
from service.db.tables.foundation import audit_events
from service.db.tables.tracking import sites, track_intents, track_sessions
from service.settings import Settings
from service.tracking.access import Actor
from service.tracking.export import (
    AUDIT_ACTION,
    ExportProgress,
    csv_chunks,
    export_window,
    start_export,
)
from service.tracking.export_consent import PageBlanker
from service.tracking.export_kinds import KINDS, ExportKindName
from service.tracking.scope import SiteScope, site_values
from tests.tracking.dashboard_seed import add_person, at, make_site, seed_istanbul

ADMIN = Actor(kind="admin", id="root")
DAY = date(2026, 11, 10)  # Europe/Istanbul (UTC+3): UTC [11-09 21:00, 11-10 21:00)
CONSENTED = at("2026-11-01 12:00")  # when the visitors chose
EXPORTED = at("2026-11-20 12:00")  # within every purpose's lifetime
LAPSED = CONSENTED + timedelta(days=100)  # past ads' 3 months, within analytics' 6


async def _read(chunks: AsyncIterator[bytes]) -> tuple[str, list[bytes]]:
    parts = [chunk async for chunk in chunks]
    return b"".join(parts).decode("utf-8"), parts


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def export_text(
    db: Database,
    kind: ExportKindName,
    first: date = DAY,
    last: date = DAY,
    *,
    now: datetime = EXPORTED,
    actor: Actor = ADMIN,
    site_id: int,
) -> str:
    exported = await start_export(db, actor, site_id, kind, first, last, now=now)
    text, _ = await _read(exported.chunks)
    assert exported.progress.finished
    return text


async def _consent(db: Database, settings: Settings, subject: str, **choices: str) -> None:
    async with db.begin() as conn:
        await store.record(
            conn,
            subject,
            choices,  # type: ignore[arg-type]
            source="banner",
            now=CONSENTED.timestamp(),
            policy=policy_from_settings(settings),
        )


async def _session(db: Database, scope: SiteScope, started: datetime, **values: Any) -> int:
    async with db.begin() as conn:
        result = await conn.execute(
            insert(track_sessions).values(
                **site_values(
                    scope,
                    visitor_id=values.pop("visitor_id", "v_visitor0000000001"),
                    started_at=started,
                    last_seen_at=started + timedelta(minutes=3),
                    page_views=1,
                    events=1,
                    device="mobile",
                    **values,
                )
            )
        )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def _intent(
    db: Database, scope: SiteScope, session: int | None, created: datetime, **values: Any
) -> int:
    async with db.begin() as conn:
        result = await conn.execute(
            insert(track_intents).values(
                **site_values(
                    scope,
                    session_id=session,
                    kind=values.pop("kind", "phone"),
                    target=values.pop("target", "tel:+905551112233"),
                    stamp=f"st-{created.timestamp()}-{session}-{values.get('gclid')}",
                    status=values.pop("status", "pending"),
                    lead_score=5,
                    created_at=created,
                    updated_at=created,
                    **values,
                )
            )
        )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def test_intents_of_the_local_day_only_oldest_first_without_deleted(
    database: Database,
) -> None:
    site, ids = await seed_istanbul(database)
    text = await export_text(database, "intents", site_id=site.site.id)
    assert text.startswith(
        "id,created_at (Europe/Istanbul),kind,target,status,lead_score,amount,currency,"
        "sealed_at (Europe/Istanbul),sealed_by,ref_code,gclid,gbraid,wbraid,call_number,"
        "call_at (Europe/Istanbul),conversation_id,session_id,source,medium,campaign,term,"
        "content,landing_page,referrer,device,country,updated_at (Europe/Istanbul)\r\n"
    )
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    rows = _rows(text)
    # i4 was deleted, i6 is the 9th locally, the other site's intent is not this site's.
    assert [int(r["id"]) for r in rows] == [ids["i1"], ids["i2"], ids["i3"], ids["i5"]]
    first = rows[0]
    assert first["created_at (Europe/Istanbul)"] == "2026-11-10T12:00:00+03:00"
    assert (first["amount"], first["currency"], first["status"]) == ("100.50", "TRY", "confirmed")
    assert first["source"] == "google" and first["device"] == "mobile"
    # No consent subject on the seeded session: nothing shows the visitor agreed.
    assert first["gclid"] == ""
    assert rows[3]["session_id"] == "" and rows[3]["source"] == ""


async def test_sessions_range_boundaries_are_local_midnights(database: Database) -> None:
    site, ids = await seed_istanbul(database)
    rows = _rows(await export_text(database, "sessions", site_id=site.site.id))
    # s1 at 23:59 of the 9th and s5 at 00:00 of the 11th (local) are outside; s4 at
    # 23:59:59 of the 10th is inside.
    assert [int(r["id"]) for r in rows] == [ids["s2"], ids["s3"], ids["s4"]]
    assert rows[0]["started_at (Europe/Istanbul)"] == "2026-11-10T00:00:00+03:00"
    assert rows[-1]["started_at (Europe/Istanbul)"] == "2026-11-10T23:59:59+03:00"
    three_days = _rows(
        await export_text(
            database,
            "sessions",
            DAY - timedelta(days=1),
            DAY + timedelta(days=1),
            site_id=site.site.id,
        )
    )
    assert [int(r["id"]) for r in three_days] == [ids[f"s{n}"] for n in range(1, 6)]


async def test_personal_cells_are_blanked_where_consent_lapsed(
    database: Database, make_settings: Any
) -> None:
    settings = make_settings()
    async with database.begin() as conn:
        site = await make_site(conn)
    scope = site.scope
    await _consent(database, settings, "both", ads="granted", analytics="granted")
    await _consent(database, settings, "no-ads", ads="denied", analytics="granted")
    started = at("2026-11-10 08:00")
    both = await _session(
        database, scope, started, visitor_id="v_both", gclid="G-both", consent_subject="both"
    )
    no_ads = await _session(
        database, scope, started, visitor_id="v_noads", gbraid="B-noads", consent_subject="no-ads"
    )
    unknown = await _session(
        database, scope, started, visitor_id="v_unknown", wbraid="W-unknown",
        consent_subject="never-asked",
    )  # fmt: skip
    anonymous = await _session(database, scope, started, visitor_id="v_anon", gclid="G-anon")
    for session, click in ((both, "G-both"), (no_ads, None), (anonymous, "G-anon")):
        await _intent(database, scope, session, started + timedelta(minutes=1), gclid=click)

    def by_id(rows: list[dict[str, str]]) -> dict[int, dict[str, str]]:
        return {int(r["id"]): r for r in rows}

    sessions = by_id(_rows(await export_text(database, "sessions", site_id=site.site.id)))
    assert (sessions[both]["visitor_id"], sessions[both]["gclid"]) == ("v_both", "G-both")
    assert (sessions[no_ads]["visitor_id"], sessions[no_ads]["gbraid"]) == ("v_noads", "")
    assert (sessions[unknown]["visitor_id"], sessions[unknown]["wbraid"]) == ("", "")
    assert (sessions[anonymous]["visitor_id"], sessions[anonymous]["gclid"]) == ("", "")
    # Not personal: kept whatever the consent.
    assert {r["device"] for r in sessions.values()} == {"mobile"}
    intents = _rows(await export_text(database, "intents", site_id=site.site.id))
    assert [r["gclid"] for r in intents] == ["G-both", "", ""]

    # 100 days on, the ads consent has expired; analytics (6 months) has not.
    later = by_id(_rows(await export_text(database, "sessions", now=LAPSED, site_id=site.site.id)))
    assert (later[both]["visitor_id"], later[both]["gclid"]) == ("v_both", "")
    later_intents = _rows(await export_text(database, "intents", now=LAPSED, site_id=site.site.id))
    assert [r["gclid"] for r in later_intents] == ["", "", ""]


async def test_conversions_of_live_intents_with_click_ids_under_consent(
    database: Database, make_settings: Any
) -> None:
    settings = make_settings()
    site, ids = await seed_istanbul(database)
    await _consent(database, settings, "buyer", ads="granted")

    async def upload(intent: int, when: datetime, subject: str | None, **values: Any) -> None:
        async with database.begin() as conn:
            await conn.execute(
                insert(ads_uploads).values(
                    **site_values(
                        site.scope,
                        intent_id=intent,
                        status=values.pop("status", "uploaded"),
                        order_id=f"kv-{intent}",
                        click_kind="gclid",
                        click_id=f"gclid-{intent}",
                        consent_subject=subject,
                        conversion_at=when,
                        value=Decimal("100.50"),
                        currency="TRY",
                        attempts=1,
                        next_attempt_at=when,
                        created_at=when,
                        updated_at=when,
                        **values,
                    )
                )
            )

    await upload(ids["i1"], at("2026-11-10 09:00"), "buyer", uploaded_at=at("2026-11-10 09:05"))
    await upload(
        ids["i3"], at("2026-11-10 11:00"), None, status="not_eligible", reason="no_click_id"
    )
    await upload(ids["i4"], at("2026-11-10 12:00"), "buyer")  # its intent was deleted
    await upload(ids["i6"], at("2026-11-09 20:00"), "buyer")  # the 9th, locally
    rows = _rows(await export_text(database, "conversions", site_id=site.site.id))
    assert [int(r["intent_id"]) for r in rows] == [ids["i1"], ids["i3"]]
    assert rows[0]["click_id"] == f"gclid-{ids['i1']}"
    assert rows[0]["uploaded_at (Europe/Istanbul)"] == "2026-11-10T12:05:00+03:00"
    assert (rows[0]["value"], rows[0]["order_id"]) == ("100.50", f"kv-{ids['i1']}")
    assert (rows[1]["click_id"], rows[1]["reason"]) == ("", "no_click_id")
    lapsed = _rows(await export_text(database, "conversions", now=LAPSED, site_id=site.site.id))
    assert lapsed[0]["click_id"] == "" and lapsed[0]["click_kind"] == "gclid"


async def test_text_cells_are_formula_safe_and_quoted_end_to_end(database: Database) -> None:
    async with database.begin() as conn:
        site = await make_site(conn)
    nasty = {
        "landing_page": '=HYPERLINK("http://evil.example","click")',
        "source": "+cmd|' /C calc'!A0",
        "medium": "-2+3",
        "campaign": "@SUM(1+1)",
        "term": "\tindent",
        "content": 'two\nlines, "quoted"',
        "referrer": "https://ok.example/?a=1,b=2",
    }
    session = await _session(database, site.scope, at("2026-11-10 08:00"), **nasty)
    raw = await export_text(database, "sessions", site_id=site.site.id)
    assert '\'=HYPERLINK(""http://evil.example"",""click"")' in raw
    assert ",'+cmd|' /C calc'!A0," in raw
    assert '"two\nlines, ""quoted"""' in raw
    (row,) = _rows(raw)
    assert int(row["id"]) == session
    expected = {
        name: ("'" + value if value[0] in "=+-@\t" else value) for name, value in nasty.items()
    }
    assert {name: row[name] for name in nasty} == expected


async def test_who_may_export(database: Database) -> None:
    site, _ids = await seed_istanbul(database)
    site_id = site.site.id
    async with database.begin() as conn:
        owner = await add_person(conn, site_id, "owner")
        editor = await add_person(conn, site_id, "editor")
        viewer = await add_person(conn, site_id, "viewer")
        elsewhere = await make_site(conn, name="Elsewhere")
        stranger = await add_person(conn, elsewhere.site.id, "owner")
    text = await export_text(
        database, "intents", actor=Actor(kind="person", id=str(owner)), site_id=site_id
    )
    assert len(_rows(text)) == 4
    for person in (editor, viewer):
        with pytest.raises(Forbidden):
            await start_export(
                database, Actor(kind="person", id=str(person)), site_id, "intents", DAY, DAY,
                now=EXPORTED,
            )  # fmt: skip
    with pytest.raises(NotFound):
        await start_export(
            database, Actor(kind="person", id=str(stranger)), site_id, "intents", DAY, DAY,
            now=EXPORTED,
        )  # fmt: skip
    async with database.begin() as conn:
        await conn.execute(update(sites).where(sites.c.id == site_id).values(deleted_at=EXPORTED))
    with pytest.raises(NotFound):  # a deleted site is no one's to export
        await start_export(database, ADMIN, site_id, "intents", DAY, DAY, now=EXPORTED)


@pytest.mark.parametrize(
    ("first", "last", "rule"),
    [
        (date(2026, 2, 2), date(2026, 2, 1), "is after"),
        (date(2025, 1, 1), date(2026, 1, 2), "at most 366 days"),
        (date(1999, 12, 31), date(2000, 1, 1), "out of range"),
    ],
)
async def test_bad_ranges_are_refused_and_not_audited(
    database: Database, first: date, last: date, rule: str
) -> None:
    async with database.begin() as conn:
        site = await make_site(conn)
    with pytest.raises(ValidationFailed, match=rule):
        await start_export(database, ADMIN, site.site.id, "sessions", first, last, now=EXPORTED)
    async with database.connect() as conn:
        audited = (await conn.execute(select(audit_events.c.id))).all()
    assert audited == []


async def test_a_year_is_allowed_and_each_export_is_audited_before_it_streams(
    database: Database,
) -> None:
    async with database.begin() as conn:
        site = await make_site(conn)
    exported = await start_export(
        database, ADMIN, site.site.id, "conversions", date(2024, 1, 1), date(2024, 12, 31),
        now=EXPORTED,
    )  # fmt: skip
    async with database.connect() as conn:
        rows = (
            (await conn.execute(select(audit_events).where(audit_events.c.action == AUDIT_ACTION)))
            .mappings()
            .all()
        )
    assert len(rows) == 1  # before a byte was read
    assert (rows[0]["actor"], rows[0]["subject"]) == ("admin:root", f"site:{site.site.id}")
    assert rows[0]["details"] == {
        "site_id": site.site.id,
        "kind": "conversions",
        "from": "2024-01-01",
        "to": "2024-12-31",
        "time_zone": "Europe/Istanbul",
    }
    assert exported.filename == f"site-{site.site.id}-conversions-2024-01-01-2024-12-31.csv"
    assert exported.headers["Content-Disposition"] == f'attachment; filename="{exported.filename}"'
    text, _ = await _read(exported.chunks)
    assert text.startswith("intent_id,conversion_at (Europe/Istanbul),") and _rows(text) == []


async def test_a_large_export_streams_in_pages_and_bounded_chunks(database: Database) -> None:
    async with database.begin() as conn:
        site = await make_site(conn)
    base = at("2026-11-10 00:00")
    total = 20_000
    async with database.begin() as conn:
        rows = [
            site_values(
                site.scope,
                kind="phone",
                target="tel:+905551112233",
                stamp=f"bulk-{n}",
                status="pending",
                lead_score=n % 100,
                # Ten intents per instant: pages must break ties by id without loss or repeats.
                created_at=base + timedelta(seconds=n // 10),
                updated_at=base,
            )
            for n in range(total)
        ]
        for start in range(0, total, 2_000):
            await conn.execute(insert(track_intents), rows[start : start + 2_000])
    window = export_window(DAY, DAY + timedelta(days=1), ZoneInfo("Europe/Istanbul"))
    progress = ExportProgress()
    chunk_bytes = 16 * 1024
    text, parts = await _read(
        csv_chunks(
            database,
            site.scope,
            KINDS["intents"],
            window,
            consent_now=EXPORTED.timestamp(),
            progress=progress,
            page_rows=3_000,
            chunk_bytes=chunk_bytes,
        )
    )
    exported = _rows(text)
    ids = [int(r["id"]) for r in exported]
    assert len(ids) == total and len(set(ids)) == total
    keys = [(r["created_at (Europe/Istanbul)"], int(r["id"])) for r in exported]
    assert keys == sorted(keys)
    assert progress.rows == total and progress.pages == 7  # 6 full pages and a short one
    assert progress.chunks == len(parts) > 10
    longest_line = max(len(line) for line in text.split("\r\n")) + 2
    assert all(len(part) < chunk_bytes + longest_line for part in parts)
    assert all(len(part) >= chunk_bytes for part in parts[:-1])
    assert progress.bytes == len(text.encode())


async def test_consent_answers_are_remembered_within_bounds(
    database: Database, make_settings: Any
) -> None:
    settings = make_settings()
    await _consent(database, settings, "yes", ads="granted")
    await _consent(database, settings, "no", ads="denied")
    blanker = PageBlanker(KINDS["conversions"].columns, cached=1)
    click = [c.name for c in KINDS["conversions"].columns].index("click_id")
    width = len(KINDS["conversions"].columns)

    def page(*subjects: str | None) -> list[tuple[Any, ...]]:
        cells: list[Any] = ["x"] * width
        return [(*cells, subject) for subject in subjects]

    now = EXPORTED.timestamp()
    async with database.connect() as conn:
        first = await blanker.apply(conn, page("yes", "no", None, "yes"), now)
        assert [row[click] for row in first] == ["x", None, None, "x"]
        assert blanker.lookups == 2
        other = await blanker.apply(conn, page("other"), now)  # never asked: blanked
        assert [row[click] for row in other] == [None]
        assert (blanker.lookups, list(blanker.allowed)) == (3, ["other"])  # one kept
        third = await blanker.apply(conn, page("yes"), now)
        assert [row[click] for row in third] == ["x"]
        assert (blanker.lookups, list(blanker.allowed)) == (4, ["yes"])  # read again
        again = await blanker.apply(conn, page("yes", "yes"), now)
        assert [row[click] for row in again] == ["x", "x"]
        assert blanker.lookups == 4  # remembered
        assert [len(row) for row in third] == [width]  # the subject is not exported
