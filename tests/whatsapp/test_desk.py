"""What the routes hand to the WhatsApp package happens whole: each agent action is audited in
its own transaction, an agent's send wakes the worker and tells the console, the webhook front
door answers the handshake, and the outbound rules keep their order."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from core.clock import ManualClock
from service.audit import list_audit
from service.backends.keys import WHATSAPP_LIVE_CHANNEL
from service.db.tables.crm import crm_convos, crm_messages, wa_webhook_events
from service.errors import ApiError
from service.settings import Settings
from service.whatsapp.crm import ConvoFilter
from service.whatsapp.desk import CrmDesk
from service.whatsapp.facility import get_whatsapp
from service.whatsapp.outbound import queue_outbound
from service.whatsapp.receiver import verify_subscription
from service.whatsapp.send_rules import unsubscribe_url
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import post_webhook, runtime_of
from tests.whatsapp.dbutil import rows
from tests.whatsapp.test_send import ADMIN, WA, inbound_convo, send


async def _audit(client: httpx.AsyncClient, action: str) -> list[dict[str, Any]]:
    async with runtime_of(client).db.connect() as conn:
        return await list_audit(conn, action=action)


async def test_agent_actions_are_audited_with_the_agent(client: httpx.AsyncClient) -> None:
    convo_id = await inbound_convo(client)
    [convo] = await rows(runtime_of(client).db, crm_convos)
    contact = f"/admin/crm/contacts/{convo.contact_id}"
    await client.post(f"/admin/crm/convos/{convo_id}/close", headers=ADMIN)
    await client.post(f"/admin/crm/convos/{convo_id}/reopen", headers=ADMIN)
    await client.patch(contact, json={"locale": "de", "email": None}, headers=ADMIN)
    await client.delete(contact, headers=ADMIN)
    expected = [
        ("crm.convo.close", f"convo:{convo_id}", None),
        ("crm.convo.reopen", f"convo:{convo_id}", None),
        ("crm.contact.update", f"contact:{convo.contact_id}", {"fields": ["email", "locale"]}),
        ("crm.contact.delete", f"contact:{convo.contact_id}", None),
    ]
    for action, subject, details in expected:
        [entry] = await _audit(client, action)
        assert (entry["actor"], entry["subject"], entry["details"]) == ("api-key", subject, details)


async def test_a_refused_action_leaves_no_audit_record(client: httpx.AsyncClient) -> None:
    assert (await client.post("/admin/crm/convos/999/close", headers=ADMIN)).status_code == 404
    cleared = await client.patch("/admin/crm/contacts/1", json={"name": None}, headers=ADMIN)
    assert cleared.status_code == 422
    assert cleared.json()["error"]["message"] == "name and locale cannot be cleared"
    assert await _audit(client, "crm.convo.close") == []
    assert await _audit(client, "crm.contact.update") == []


async def test_replay_is_audited_and_a_rejected_delivery_is_a_conflict(
    client: httpx.AsyncClient,
) -> None:
    await post_webhook(client, p.inbound(WA, "A", p.text(WA, "wamid.R1", "hi")))
    await post_webhook(client, {"object": "page", "entry": []})
    good, rejected = [e.id for e in await rows(runtime_of(client).db, wa_webhook_events)]
    replayed = await client.post(f"/admin/wa/events/{good}/replay", headers=ADMIN)
    assert replayed.json() == {"event_id": good, "messages": 0, "duplicates": 1, "statuses": 0}
    [entry] = await _audit(client, "whatsapp.webhook.replay")
    assert entry["subject"] == f"wa_event:{good}"
    assert entry["details"] == {"messages": 0, "duplicates": 1}
    refused = await client.post(f"/admin/wa/events/{rejected}/replay", headers=ADMIN)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "invalid_payload"
    assert refused.json()["error"]["details"] == {"event_id": rejected}
    assert len(await _audit(client, "whatsapp.webhook.replay")) == 1


async def test_the_unsubscribe_link_is_audited_once(client: httpx.AsyncClient) -> None:
    await inbound_convo(client)
    [convo] = await rows(runtime_of(client).db, crm_convos)
    link = unsubscribe_url(get_whatsapp(runtime_of(client)), convo.contact_id)
    path = "/u/" + link.rsplit("/u/", 1)[1]
    assert (await client.get(path)).status_code == 200
    assert (await client.post(path)).status_code == 200  # already out: nothing changes
    [entry] = await _audit(client, "whatsapp.unsubscribe")
    subject = f"contact:{convo.contact_id}"
    assert (entry["actor"], entry["subject"], entry["details"]) == (
        subject,
        subject,
        {"source": "unsubscribe_link"},
    )


async def test_an_unsubscribe_link_of_a_contact_that_is_gone_is_404(
    client: httpx.AsyncClient,
) -> None:
    link = unsubscribe_url(get_whatsapp(runtime_of(client)), 4242)
    page = await client.get("/u/" + link.rsplit("/u/", 1)[1])
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")


async def test_an_agents_send_wakes_the_worker_and_tells_the_console(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    convo_id = await inbound_convo(client)
    runtime = runtime_of(client)
    assert runtime.queue is not None
    woken: list[bool] = []
    monkeypatch.setattr(runtime.queue, "wake", lambda: woken.append(True))
    async with runtime.backends.pubsub.subscribe(WHATSAPP_LIVE_CHANNEL) as subscription:
        response = await send(client, convo_id=convo_id, template={"name": "t", "language": "tr"})
        received = await subscription.get(timeout=5)
    assert response.status_code == 202 and woken
    assert received is not None
    assert orjson.loads(received[1]) == {
        "type": "message.new",
        "message_id": response.json()["id"],
        "convo_id": convo_id,
        "direction": "out",
        "kind": "template",
        "status": "queued",
    }


async def test_without_a_queue_sends_are_503_and_receipts_not_queued(
    client: httpx.AsyncClient,
) -> None:
    convo_id = await inbound_convo(client)
    runtime = runtime_of(client)
    queue, runtime.queue = runtime.queue, None
    try:
        refused = await send(client, convo_id=convo_id, text="hi")
        read = await client.post(f"/admin/crm/convos/{convo_id}/read", headers=ADMIN)
    finally:
        runtime.queue = queue
    assert refused.status_code == 503
    assert refused.json()["error"]["details"] == {"component": "queue"}
    assert await rows(runtime.db, crm_messages, crm_messages.c.direction == "out") == []
    assert read.json() == {
        "convo_id": convo_id,
        "unread": 0,
        "receipt_queued": False,
        "receipt_skipped": "no_queue",
    }


async def test_outbound_rules_keep_their_order(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Kind, recipient, consent, window: the first broken rule is the one reported."""
    convo_id = await inbound_convo(client, consent=False)
    clock.advance(2 * 86400)  # the window closed as well
    whatsapp = get_whatsapp(runtime_of(client))

    async def refusal(target: int, **message: Any) -> tuple[int, str]:
        try:
            async with runtime_of(client).db.begin() as conn:
                await queue_outbound(whatsapp, conn, target, created_by="test", **message)
        except ApiError as exc:
            return exc.status, exc.code
        raise AssertionError("queued")

    assert await refusal(999, text="a", template=None) == (404, "not_found")
    assert await refusal(convo_id) == (422, "validation_failed")
    assert await refusal(convo_id, text="hi") == (403, "consent_required")
    assert await refusal(convo_id, text="hi", enforce_consent=False) == (409, "template_required")


async def test_the_desk_lists_what_the_routes_list(client: httpx.AsyncClient) -> None:
    await inbound_convo(client)
    desk = runtime_of(client).facility(CrmDesk)
    page = await desk.conversations(ConvoFilter(status="open"), limit=10, cursor=None)
    listed = (
        await client.get("/admin/crm/convos", params={"status": "open"}, headers=ADMIN)
    ).json()
    assert page == listed


def _settings(token: str) -> Settings:
    return Settings(_env_file=None, whatsapp_verify_token=token)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("configured", "mode", "token", "challenge", "answer"),
    [
        ("t", "subscribe", "t", "42", "42"),
        ("t", "subscribe", "t", None, 400),
        ("t", "subscribe", "t", "", 400),
        ("t", "subscribe", "u", None, 403),
        ("t", None, "t", "42", 403),
        ("t", "subscribe", None, "42", 403),
        ("", "subscribe", "", "42", 403),  # no token configured: nothing verifies
    ],
)
def test_the_handshake(
    configured: str, mode: str | None, token: str | None, challenge: str | None, answer: object
) -> None:
    settings = _settings(configured)
    if isinstance(answer, str):
        assert verify_subscription(settings, mode, token, challenge) == answer
        return
    with pytest.raises(ApiError) as refused:
        verify_subscription(settings, mode, token, challenge)
    assert refused.value.status == answer


async def test_a_second_open_conversation_blocks_reopening_with_its_id(
    client: httpx.AsyncClient,
) -> None:
    first = await inbound_convo(client)
    await client.post(f"/admin/crm/convos/{first}/close", headers=ADMIN)
    await post_webhook(client, p.inbound(WA, "Ayşe", p.text(WA, "wamid.IN2", "Yine ben")))
    async with runtime_of(client).db.connect() as conn:
        second = await conn.scalar(select(crm_convos.c.id).where(crm_convos.c.id != first))
    clash = await client.post(f"/admin/crm/convos/{first}/reopen", headers=ADMIN)
    assert clash.status_code == 409
    assert clash.json()["error"]["details"] == {"open_convo_id": second}
    assert await _audit(client, "crm.convo.reopen") == []
