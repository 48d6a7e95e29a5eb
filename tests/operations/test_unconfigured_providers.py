"""No job is queued for a provider this deployment has not configured, and the API says so.

Without ``KERVAN_WHATSAPP_ACCESS_TOKEN`` and ``KERVAN_WHATSAPP_PHONE_NUMBER_ID`` every send and
read receipt would only fail at the Graph API, attempt after attempt, into the dead letters:

* an agent's send is refused with 409 ``whatsapp_not_configured``, nothing stored or queued;
* marking a conversation read still marks it, and answers ``receipt_queued: false`` with
  ``receipt_skipped: whatsapp_not_configured`` (``not_whatsapp`` for a web chat, which has no
  WhatsApp message to acknowledge, configured or not);
* inbound messages queue no auto-reply job and no STOP/START acknowledgement.

(Telegram: admin login codes and new-customer alerts were already never queued without a bot
token; ``service/admins/facility.py``, ``service/telegram/jobs.py``.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from core.clock import ManualClock
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages
from service.db.tables.jobs import queue_jobs
from service.db.types import from_timestamp
from service.runtime import Runtime
from service.settings import Settings
from service.whatsapp.outbound import AUTOREPLY_QUEUE, READ_QUEUE, SEND_QUEUE
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import APP_SECRET, START, post_webhook, runtime_of

WA = "905321234567"
ADMIN = {"Authorization": "Bearer test-admin-key"}
Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def _settings(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "whatsapp_app_secret": APP_SECRET,
        "whatsapp_access_token": "",
        "whatsapp_phone_number_id": "",
        "whatsapp_auto_reply": True,
        "whatsapp_faq": {"fiyat": "Fiyat listemiz: https://shop.example/fiyat"},
        # The jobs stay in the SQL outbox, where the test counts them.
        "queue_embedded_worker": False,
    }
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture
async def unconfigured(
    make_settings: Callable[..., Settings], make_client: Client
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(_settings(make_settings), clock=ManualClock(START + 3600)) as client:
        yield client


@pytest.fixture
async def configured(
    make_settings: Callable[..., Settings], make_client: Client
) -> AsyncIterator[httpx.AsyncClient]:
    settings = _settings(
        make_settings,
        whatsapp_access_token="wa-access-token",
        whatsapp_phone_number_id="1234567890",
        whatsapp_auto_reply=False,
    )
    async with make_client(settings, clock=ManualClock(START + 3600)) as client:
        yield client


async def _jobs(runtime: Runtime, queue: str) -> int:
    async with runtime.db.connect() as conn:
        found = await conn.scalar(
            select(func.count()).select_from(queue_jobs).where(queue_jobs.c.queue == queue)
        )
    return int(found or 0)


async def _outbound(runtime: Runtime) -> int:
    async with runtime.db.connect() as conn:
        found = await conn.scalar(
            select(func.count()).select_from(crm_messages).where(crm_messages.c.direction == "out")
        )
    return int(found or 0)


async def _inbound(client: httpx.AsyncClient, msg_id: str, text: str) -> int:
    response = await post_webhook(client, p.inbound(WA, "Ayşe", p.text(WA, msg_id, text)))
    assert response.status_code == 200, response.text
    async with runtime_of(client).db.connect() as conn:
        return int(await conn.scalar(select(func.max(crm_convos.c.id))) or 0)


async def test_an_agents_send_is_refused_and_nothing_is_stored_or_queued(
    unconfigured: httpx.AsyncClient,
) -> None:
    convo_id = await _inbound(unconfigured, "wamid.IN1", "Selam")
    response = await unconfigured.post(
        "/admin/wa/send", json={"convo_id": convo_id, "text": "Merhaba"}, headers=ADMIN
    )
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "whatsapp_not_configured"
    assert error["details"] == {
        "missing": ["KERVAN_WHATSAPP_ACCESS_TOKEN", "KERVAN_WHATSAPP_PHONE_NUMBER_ID"]
    }
    runtime = runtime_of(unconfigured)
    assert await _outbound(runtime) == 0
    assert await _jobs(runtime, SEND_QUEUE) == 0


async def test_marking_read_queues_no_receipt_and_says_why(
    unconfigured: httpx.AsyncClient,
) -> None:
    convo_id = await _inbound(unconfigured, "wamid.IN1", "Selam")
    response = await unconfigured.post(f"/admin/crm/convos/{convo_id}/read", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "convo_id": convo_id,
        "unread": 0,
        "receipt_queued": False,
        "receipt_skipped": "whatsapp_not_configured",
    }
    assert await _jobs(runtime_of(unconfigured), READ_QUEUE) == 0


async def test_inbound_messages_queue_no_reply_and_no_keyword_acknowledgement(
    unconfigured: httpx.AsyncClient,
) -> None:
    await _inbound(unconfigured, "wamid.IN1", "fiyat?")  # an FAQ keyword: auto-reply is on
    await _inbound(unconfigured, "wamid.IN2", "STOP")  # acknowledged when WhatsApp can send
    runtime = runtime_of(unconfigured)
    assert await _jobs(runtime, AUTOREPLY_QUEUE) == 0
    assert await _jobs(runtime, SEND_QUEUE) == 0
    assert await _outbound(runtime) == 0


async def test_with_whatsapp_configured_the_receipt_is_queued(
    configured: httpx.AsyncClient,
) -> None:
    convo_id = await _inbound(configured, "wamid.IN1", "Selam")
    response = await configured.post(f"/admin/crm/convos/{convo_id}/read", headers=ADMIN)
    assert response.json() == {
        "convo_id": convo_id,
        "unread": 0,
        "receipt_queued": True,
        "receipt_skipped": None,
    }
    assert await _jobs(runtime_of(configured), READ_QUEUE) == 1


async def test_a_web_chat_has_no_whatsapp_receipt_to_queue(configured: httpx.AsyncClient) -> None:
    runtime = runtime_of(configured)
    now = from_timestamp(START)
    async with runtime.db.begin() as conn:
        contact = await conn.execute(
            insert(crm_contacts).values(name="Web", locale="en", created_at=now, updated_at=now)
        )
        convo = await conn.execute(
            insert(crm_convos).values(
                contact_id=contact.inserted_primary_key[0],  # type: ignore[index]
                channel="web",
                status="open",
                unread=1,
                created_at=now,
                last_activity_at=now,
            )
        )
        convo_id = int(convo.inserted_primary_key[0])  # type: ignore[index]
        await conn.execute(
            insert(crm_messages).values(
                convo_id=convo_id,
                direction="in",
                kind="text",
                body="hello",
                provider_id="web:customer:c1",
                status="received",
                created_at=now,
                marketing=False,
            )
        )
    response = await configured.post(f"/admin/crm/convos/{convo_id}/read", headers=ADMIN)
    assert response.json()["receipt_skipped"] == "not_whatsapp"
    assert await _jobs(runtime, READ_QUEUE) == 0
