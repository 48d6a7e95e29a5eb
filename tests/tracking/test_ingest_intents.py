"""Phone and WhatsApp clicks become intents: one per click (its event id is the stamp),
the number in one spelling, the session's click ids, a lead score, and WhatsApp's reference
code, which is unique across sites."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete

from core.tracking.score import Signals, lead_score
from service.db.tables.tracking import track_event_ids
from service.settings import Settings
from service.tracking.access import script_scope
from service.tracking.scope import where_site
from tests.tracking.ingest_support import (
    NOW,
    batch,
    click,
    harness,
    intent,
    new_site,
    page_view,
)


async def test_clicks_become_scored_pending_intents(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        landing = "https://example.com/?gclid=CLICK-1"
        phone = intent(
            NOW - 10, "phone", "tel:+90 (555) 111 22 33", url="https://example.com/iletisim"
        )
        whatsapp = intent(
            NOW - 5,
            "whatsapp",
            "https://api.whatsapp.com/send?phone=905551112233&text=Merhaba%20(ref%3A%20K7X2QW)",
            ref="K7X2QW",
        )
        events = [
            page_view(NOW - 200, landing),
            page_view(NOW - 120, "https://example.com/urun"),
            page_view(NOW - 60, "https://example.com/iletisim"),
            phone,
            whatsapp,
        ]
        answer = (await h.send(batch(h.site, events))).json()
        assert answer["accepted"] == 5
        (session,) = await h.sessions()
        first, second = await h.intents()
        assert (first.kind, first.target, first.stamp, first.ref_code) == (
            "phone",
            "+905551112233",
            phone["id"],
            None,
        )
        assert (second.kind, second.target, second.stamp, second.ref_code) == (
            "whatsapp",
            "+905551112233",
            whatsapp["id"],
            "K7X2QW",
        )
        for row in (first, second):
            assert row.session_id == session.id and row.status == "pending"
            assert (row.gclid, row.wbraid, row.gbraid) == ("CLICK-1", None, None)
            assert row.deleted_at is None and row.sealed_at is None
        expected = lead_score(
            Signals(
                page_views=3,
                seconds_on_site=190,
                ads_click=True,
                returning=False,
                contact_page=True,
            )
        )
        assert first.lead_score == expected == 10 + 8 + 20 + 20 + 15
        assert first.created_at.timestamp() == NOW - 10
        (usage,) = await h.usage()
        assert (usage.events, usage.intents) == (5, 2)


async def test_a_resent_click_stays_one_intent(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        call = intent(NOW - 5, "phone", "tel:05551112233")
        await h.send(batch(h.site, [call]))
        # Even when its dedup row is gone (expired), the stamp keeps it one intent.
        async with h.db.begin() as conn:
            await conn.execute(
                delete(track_event_ids).where(where_site(track_event_ids, script_scope(h.site)))
            )
        again = (await h.send(batch(h.site, [call]))).json()
        assert again["results"][0]["outcome"] == "accepted"
        (row,) = await h.intents()
        assert row.target == "05551112233"


async def test_a_reference_code_taken_by_another_intent_is_not_stored_twice(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        other = await new_site(h.db)
        wa = "https://wa.me/905551112233"
        await h.send(batch(other, [intent(NOW - 9, "whatsapp", wa, ref="ABCDEF")]))
        mine = intent(NOW - 5, "whatsapp", wa, ref="ABCDEF")
        answer = (await h.send(batch(h.site, [mine, click(NOW - 4)]))).json()
        assert answer["results"][0] == {
            "id": mine["id"],
            "outcome": "accepted",
            "warning": "ref_code_taken",
            "message": "the reference code is another intent's; stored without it",
        }
        (row,) = await h.intents()
        assert row.ref_code is None and row.stamp == mine["id"]
        (theirs,) = await h.rows_of(other)
        assert theirs.ref_code == "ABCDEF"
