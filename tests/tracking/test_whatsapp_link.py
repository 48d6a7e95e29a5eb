# ruff: noqa: F811  (fixtures imported from tests/tracking/people_rig.py are redefined as parameters)
"""A WhatsApp message naming a click's reference code links that intent to the conversation,
end to end: a signed webhook delivery as Meta sends it, processed by the app, the link written
in the transaction that stores the message, once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from service.db.tables.crm import crm_contacts, crm_convos
from service.tracking.links import ref_codes
from tests.tracking.people_rig import ADMIN, Rig, make_rig, stack  # noqa: F401
from tests.whatsapp import payloads
from tests.whatsapp.conftest import signed

APP_SECRET = "link-test-app-secret"


@pytest.fixture
async def wa_rig(make_rig: Any) -> AsyncIterator[Rig]:
    async with make_rig(
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token="link-verify",
        whatsapp_access_token="link-access",
        whatsapp_phone_number_id=payloads.PHONE_NUMBER_ID,
        # Never called: no worker runs the jobs an inbound message may queue.
        whatsapp_graph_base_url="http://127.0.0.1:9",
    ) as made:
        yield made


async def deliver(rig: Rig, payload: Any) -> None:
    body, headers = signed(payload, APP_SECRET)
    answer = await rig.client.post("/webhooks/wa", content=body, headers=headers)
    assert answer.status_code == 200, answer.text


async def convo_of(rig: Rig, wa_id: str) -> int:
    async with rig.db.connect() as conn:
        query = (
            select(crm_convos.c.id)
            .join(crm_contacts, crm_contacts.c.id == crm_convos.c.contact_id)
            .where(crm_contacts.c.wa_id == wa_id)
        )
        return int((await conn.execute(query)).scalar_one())


def test_codes_are_found_in_any_case_and_only_in_the_scripts_alphabet() -> None:
    assert ref_codes("Merhaba, fiyat alabilir miyim? (ref: K7X2QW)") == ["K7X2QW"]
    assert ref_codes("REF:k7x2qw and Ref :  ABCDEF, ref: K7X2QW") == ["K7X2QW", "ABCDEF"]
    assert ref_codes("ref: K7X2Q0") == []  # 0 and 1 are not in the alphabet
    assert ref_codes("ref: K7X2QWX") == [] and ref_codes("xref: K7X2QW") == []
    assert ref_codes("preference: ABCDEF") == [] and ref_codes(None) == []


async def test_a_message_with_the_code_links_its_intent_once(wa_rig: Rig) -> None:
    rig = wa_rig
    site = await rig.site("Shop")
    other = await rig.site("Other")
    session = await rig.tracking_session(site["id"])
    intent = await rig.intent(
        site["id"],
        kind="whatsapp",
        target="https://wa.me/905551112233",
        ref_code="K7X2QW",
        session_id=session,
    )
    unrelated = await rig.intent(
        other["id"], kind="whatsapp", target="https://wa.me/491701234567", ref_code="ABCDEF"
    )

    text = "Merhaba, bilgi alabilir miyim? (ref: k7x2qw)"  # the code typed in lower case
    first = payloads.text("905321234567", "wamid.link-1", text)
    await deliver(rig, payloads.inbound("905321234567", "Ayşe", first))
    convo = await convo_of(rig, "905321234567")
    row = await rig.intent_row(site["id"], intent)
    assert row.conversation_id == convo and row.session_id == session
    assert (await rig.intent_row(other["id"], unrelated)).conversation_id is None

    # The site owner sees it on the intent.
    shown = await rig.client.get(f"/t/sites/{site['id']}/intents/{intent}", headers=ADMIN)
    assert shown.json()["conversation_id"] == convo

    # Redelivered, and the same code from another number: the first conversation stays.
    await deliver(rig, payloads.inbound("905321234567", "Ayşe", first))
    again = payloads.text("905009998877", "wamid.link-2", "ref: K7X2QW tekrar")
    await deliver(rig, payloads.inbound("905009998877", "Başka", again))
    assert (await rig.intent_row(site["id"], intent)).conversation_id == convo


async def test_messages_without_a_known_code_link_nothing(wa_rig: Rig) -> None:
    rig = wa_rig
    site = await rig.site("Shop")
    phone = await rig.intent(site["id"], kind="phone", ref_code="PHONE2")
    linked = await rig.intent(site["id"], kind="whatsapp", ref_code="ZZZZZZ")
    messages = [
        payloads.text("905321234567", "wamid.none-1", "Merhaba (ref: QQQQQQ)"),  # unknown code
        payloads.text("905321234567", "wamid.none-2", "ref: PHONE2"),  # not a WhatsApp intent
        payloads.text("905321234567", "wamid.none-3", "no code at all"),
    ]
    await deliver(rig, payloads.inbound("905321234567", "Ayşe", *messages))
    assert (await rig.intent_row(site["id"], phone)).conversation_id is None
    assert (await rig.intent_row(site["id"], linked)).conversation_id is None
    # The messages themselves were stored as always.
    assert await convo_of(rig, "905321234567") > 0
