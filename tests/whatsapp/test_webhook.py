from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from sqlalchemy import update

from core.errors import StorageError
from core.whatsapp.signature import sign_body
from service.db.tables.crm import (
    crm_contacts,
    crm_convos,
    crm_messages,
    crm_pending_statuses,
    wa_webhook_events,
)
from service.db.types import from_timestamp
from service.metrics import REGISTRY
from service.whatsapp.facility import get_whatsapp
from service.whatsapp.store import record_sent
from service.whatsapp.webhook import decode_raw
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import APP_SECRET, VERIFY_TOKEN, post_webhook, runtime_of, signed
from tests.whatsapp.dbutil import count, message_by_provider_id, rows, seed_outbound

WA = "905321234567"


async def test_verification_handshake(client: httpx.AsyncClient) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = await client.get("/webhooks/wa", params=params)
    assert response.status_code == 200
    assert response.text == "1158201444"
    for bad in (
        {"hub.verify_token": "nope"},
        {"hub.mode": "unsubscribe"},
        {"hub.verify_token": ""},
    ):
        response = await client.get("/webhooks/wa", params={**params, **bad})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "verification_failed"


async def test_missing_or_bad_signature_is_401_and_stores_nothing(
    client: httpx.AsyncClient,
) -> None:
    body = orjson.dumps(p.inbound(WA, "Ayşe", p.text(WA, "wamid.1", "hi")))
    for header in (None, "", "sha256=00", "garbage", "sha256=" + "0" * 64):
        headers = {} if header is None else {"X-Hub-Signature-256": header}
        response = await client.post("/webhooks/wa", content=body, headers=headers)
        assert response.status_code == 401, header
        assert response.json()["error"]["code"] == "invalid_signature"
    db = runtime_of(client).db
    assert await count(db, wa_webhook_events) == 0
    assert await count(db, crm_messages) == 0


async def test_tampered_body_and_wrong_secret_are_refused(client: httpx.AsyncClient) -> None:
    body, headers = signed(p.inbound(WA, "Ayşe", p.text(WA, "wamid.1", "hi")))
    tampered = body.replace(b'"hi"', b'"HI"')
    assert (await client.post("/webhooks/wa", content=tampered, headers=headers)).status_code == 401
    wrong = {"X-Hub-Signature-256": sign_body("other-secret", body)}
    assert (await client.post("/webhooks/wa", content=body, headers=wrong)).status_code == 401
    assert await count(runtime_of(client).db, wa_webhook_events) == 0


async def test_text_message_creates_contact_conversation_and_message(
    client: httpx.AsyncClient,
) -> None:
    response = await post_webhook(client, p.inbound(WA, "Ayşe", p.text(WA, "wamid.1", "Merhaba")))
    assert response.status_code == 200
    assert response.json()["messages"] == 1
    db = runtime_of(client).db
    [contact] = await rows(db, crm_contacts)
    assert (contact.wa_id, contact.name, contact.locale) == (WA, "Ayşe", "tr")
    [convo] = await rows(db, crm_convos)
    assert (convo.contact_id, convo.status, convo.channel, convo.unread) == (
        contact.id,
        "open",
        "whatsapp",
        1,
    )
    assert convo.last_inbound_at == from_timestamp(1_700_000_100)
    message = await message_by_provider_id(db, "wamid.1")
    assert (message.direction, message.kind, message.body, message.status) == (
        "in",
        "text",
        "Merhaba",
        "received",
    )
    [event] = await rows(db, wa_webhook_events)
    assert event.state == "processed" and event.messages == 1
    assert orjson.loads(decode_raw(event.body, event.body_encoding))["object"] == (
        "whatsapp_business_account"
    )


async def test_every_message_type_is_stored(client: httpx.AsyncClient) -> None:
    response = await post_webhook(client, p.inbound(WA, "Ayşe", *p.ALL_TYPES))
    assert response.status_code == 200
    db = runtime_of(client).db
    stored = {m.provider_id: m for m in await rows(db, crm_messages)}
    assert set(stored) == {m["id"] for m in p.ALL_TYPES}
    assert stored["wamid.I1"].payload["content"]["mime_type"] == "image/jpeg"
    assert stored["wamid.L1"].payload["content"]["longitude"] == pytest.approx(28.9784)
    assert stored["wamid.X1"].kind == "unknown"
    assert stored["wamid.X1"].payload["type"] == "hologram"
    assert stored["wamid.U1"].payload["errors"][0]["code"] == 131051
    assert stored["wamid.B1"].body == "Evet"
    [convo] = await rows(db, crm_convos)
    assert convo.unread == len(p.ALL_TYPES)


async def test_duplicate_deliveries_are_stored_once(client: httpx.AsyncClient) -> None:
    payload = p.inbound(WA, "Ayşe", p.text(WA, "wamid.1", "a"), p.text(WA, "wamid.2", "b"))
    first = await post_webhook(client, payload)
    second = await post_webhook(client, payload)
    assert first.json()["messages"] == 2
    assert (second.json()["messages"], second.json()["duplicates"]) == (0, 2)
    db = runtime_of(client).db
    assert await count(db, crm_messages) == 2
    assert await count(db, wa_webhook_events) == 2  # both deliveries are logged raw
    [convo] = await rows(db, crm_convos)
    assert convo.unread == 2


async def test_duplicate_inside_one_batch_and_case_sensitive_ids(client: httpx.AsyncClient) -> None:
    payload = p.inbound(
        WA,
        "Ayşe",
        p.text(WA, "wamid.AbC=", "one"),
        p.text(WA, "wamid.AbC=", "one again"),
        p.text(WA, "wamid.abc=", "another"),
    )
    response = await post_webhook(client, payload)
    assert (response.json()["messages"], response.json()["duplicates"]) == (2, 1)
    bodies = {m.provider_id: m.body for m in await rows(runtime_of(client).db, crm_messages)}
    assert bodies == {"wamid.AbC=": "one", "wamid.abc=": "another"}


async def test_several_entries_and_contacts(client: httpx.AsyncClient) -> None:
    payload = p.envelope(
        p.value(contacts=[p.contact("111", "A")], messages=[p.text("111", "m1", "a")]),
        p.value(contacts=[p.contact("222", "B")], messages=[p.text("222", "m2", "b")]),
        p.value(contacts=[p.contact("111", "A2")], messages=[p.text("111", "m3", "c")]),
        entries=3,
    )
    assert (await post_webhook(client, payload)).json()["messages"] == 3
    db = runtime_of(client).db
    contacts = {c.wa_id: c.name for c in await rows(db, crm_contacts)}
    assert contacts == {"111": "A2", "222": "B"}
    convos = await rows(db, crm_convos)
    assert sorted(c.unread for c in convos) == [1, 2]


async def test_closed_conversation_gets_a_new_open_one(client: httpx.AsyncClient) -> None:
    await post_webhook(client, p.inbound(WA, "A", p.text(WA, "m1", "a")))
    db = runtime_of(client).db
    async with db.begin() as conn:
        await conn.execute(update(crm_convos).values(status="closed", open_key=None))
    await post_webhook(client, p.inbound(WA, "A", p.text(WA, "m2", "b")))
    convos = await rows(db, crm_convos)
    assert [c.status for c in convos] == ["closed", "open"]


async def test_out_of_order_statuses_never_move_backwards(client: httpx.AsyncClient) -> None:
    db = runtime_of(client).db
    await seed_outbound(db, "wamid.OUT1")
    payload = p.statuses(
        p.status("wamid.OUT1", "read", ts=1_700_000_300),
        p.status("wamid.OUT1", "delivered", ts=1_700_000_200),
    )
    assert (await post_webhook(client, payload)).status_code == 200
    await post_webhook(client, p.statuses(p.status("wamid.OUT1", "sent", ts=1_700_000_100)))
    message = await message_by_provider_id(db, "wamid.OUT1")
    assert message.status == "read"
    assert message.delivered_at == from_timestamp(1_700_000_200)
    assert message.read_at == from_timestamp(1_700_000_300)
    # A late failure report cannot undo a confirmed delivery.
    await post_webhook(
        client, p.statuses(p.status("wamid.OUT1", "failed", errors=[p.RE_ENGAGEMENT_ERROR]))
    )
    assert (await message_by_provider_id(db, "wamid.OUT1")).status == "read"


async def test_failed_status_keeps_the_error(client: httpx.AsyncClient) -> None:
    db = runtime_of(client).db
    await seed_outbound(db, "wamid.OUT2")
    payload = p.statuses(
        p.status("wamid.OUT2", "failed", ts=1_700_000_400, errors=[p.RE_ENGAGEMENT_ERROR])
    )
    await post_webhook(client, payload)
    message = await message_by_provider_id(db, "wamid.OUT2")
    assert message.status == "failed"
    assert message.failed_at == from_timestamp(1_700_000_400)
    assert message.error["errors"][0]["code"] == 131047
    assert message.error["errors"][0]["title"] == "Re-engagement message"


async def test_status_for_unknown_id_is_applied_when_the_message_appears(
    client: httpx.AsyncClient,
) -> None:
    runtime = runtime_of(client)
    db = runtime.db
    payload = p.statuses(
        p.status("wamid.LATE", "delivered", ts=1_700_000_200),
        p.status("wamid.LATE", "read", ts=1_700_000_250),
    )
    assert (await post_webhook(client, payload)).status_code == 200
    assert await count(db, crm_pending_statuses) == 2
    message_id = await seed_outbound(db, None)
    async with db.begin() as conn:
        changes = await record_sent(conn, message_id, "wamid.LATE", from_timestamp(1_700_000_150))
    assert [c.status for c in changes] == ["sent", "delivered", "read"]
    message = await message_by_provider_id(db, "wamid.LATE")
    assert message.status == "read"
    assert message.sent_at == from_timestamp(1_700_000_150)
    assert message.delivered_at == from_timestamp(1_700_000_200)
    assert await count(db, crm_pending_statuses) == 0


async def test_foreign_or_malformed_payload_is_400_and_logged(client: httpx.AsyncClient) -> None:
    bodies = [
        b"{not json",
        b"\xff\xfe{}",
        b"[]",
        b'{"object": "page", "entry": []}',
        b'"x"',
        b"null",
    ]
    for body in bodies:
        headers = {"X-Hub-Signature-256": sign_body(APP_SECRET, body)}
        response = await client.post("/webhooks/wa", content=body, headers=headers)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "invalid_payload"
    db = runtime_of(client).db
    events = await rows(db, wa_webhook_events)
    assert [e.state for e in events] == ["rejected"] * len(bodies)
    assert [decode_raw(e.body, e.body_encoding) for e in events] == bodies
    assert await count(db, crm_messages) == 0


async def test_new_messages_and_status_changes_are_published(client: httpx.AsyncClient) -> None:
    runtime = runtime_of(client)
    await seed_outbound(runtime.db, "wamid.OUT3", wa_id="999")
    async with runtime.backends.pubsub.subscribe("wa:live") as subscription:
        await post_webhook(client, p.inbound(WA, "A", p.text(WA, "wamid.9", "hey")))
        await post_webhook(client, p.statuses(p.status("wamid.OUT3", "delivered")))
        received = []
        async for _channel, message in subscription:
            received.append(orjson.loads(message))
            if len(received) == 2:
                break
    assert received[0]["type"] == "message.new" and received[0]["direction"] == "in"
    assert received[1] == {
        "type": "message.status",
        "message_id": received[1]["message_id"],
        "convo_id": received[1]["convo_id"],
        "status": "delivered",
        "previous": "sent",
    }


async def test_deliveries_are_counted_in_metrics(client: httpx.AsyncClient) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        sample("kervan_whatsapp_webhooks_total", outcome="processed"),
        sample("kervan_whatsapp_webhooks_total", outcome="bad_signature"),
        sample("kervan_whatsapp_inbound_messages_total", result="duplicate"),
        sample("kervan_whatsapp_status_updates_total", result="parked"),
    )
    payload = p.inbound(WA, "A", p.text(WA, "wamid.M1", "hi"))
    await post_webhook(client, payload)
    await post_webhook(client, payload)
    await post_webhook(client, p.statuses(p.status("wamid.NOPE", "sent")))
    await client.post("/webhooks/wa", content=b"{}", headers={"X-Hub-Signature-256": "sha256=0"})
    after = (
        sample("kervan_whatsapp_webhooks_total", outcome="processed"),
        sample("kervan_whatsapp_webhooks_total", outcome="bad_signature"),
        sample("kervan_whatsapp_inbound_messages_total", result="duplicate"),
        sample("kervan_whatsapp_status_updates_total", result="parked"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [3, 1, 1, 1]


async def test_large_batches_are_accepted_and_oversized_bodies_refused(
    client: httpx.AsyncClient,
) -> None:
    many = [p.text(WA, f"wamid.B{i}", "x" * 1000) for i in range(1500)]  # ~1.7 MB
    response = await post_webhook(client, p.inbound(WA, "A", *many))
    assert response.status_code == 200
    assert response.json()["messages"] == 1500
    huge = b" " * (runtime_of(client).settings.whatsapp_max_body_bytes + 1)
    response = await post_webhook(client, huge)
    assert response.status_code == 413


async def test_failed_delivery_is_kept_and_can_be_replayed(client: httpx.AsyncClient) -> None:
    runtime = runtime_of(client)
    processor = get_whatsapp(runtime).processor

    async def broken_hook(*_args: object) -> list[dict[str, object]]:
        raise StorageError("database went away")

    processor.hooks.append(broken_hook)
    response = await post_webhook(client, p.inbound(WA, "A", p.text(WA, "wamid.R1", "hi")))
    assert response.status_code == 503  # Meta redelivers later
    [event] = await rows(runtime.db, wa_webhook_events)
    assert event.state == "failed"
    assert await count(runtime.db, crm_messages) == 0  # nothing half-written
    processor.hooks.remove(broken_hook)

    admin = {"Authorization": "Bearer test-admin-key"}
    replayed = await client.post(f"/admin/wa/events/{event.id}/replay", headers=admin)
    assert replayed.status_code == 200
    assert replayed.json()["messages"] == 1
    assert (await rows(runtime.db, wa_webhook_events))[0].state == "processed"
    again = await client.post(f"/admin/wa/events/{event.id}/replay", headers=admin)
    assert (again.json()["messages"], again.json()["duplicates"]) == (0, 1)
    missing = await client.post("/admin/wa/events/999999/replay", headers=admin)
    assert missing.status_code == 404


async def test_very_long_text_is_stored_whole(client: httpx.AsyncClient) -> None:
    body = "ğ" * 70_000  # past MariaDB's 64 KB TEXT in UTF-8
    response = await post_webhook(client, p.inbound(WA, "A", p.text(WA, "wamid.LONG", body)))
    assert response.status_code == 200
    assert (await message_by_provider_id(runtime_of(client).db, "wamid.LONG")).body == body


async def test_concurrent_redeliveries_store_the_message_once(client: httpx.AsyncClient) -> None:
    payload = p.inbound("491700000077", "Neu", p.text("491700000077", "wamid.RACE", "hi"))
    responses = await asyncio.gather(*(post_webhook(client, payload) for _ in range(6)))
    assert [r.status_code for r in responses] == [200] * 6
    assert sum(r.json()["messages"] for r in responses) == 1
    db = runtime_of(client).db
    assert await count(db, crm_messages) == 1
    assert await count(db, crm_contacts) == 1
    [convo] = await rows(db, crm_convos)
    assert convo.unread == 1


async def test_concurrent_first_messages_of_a_new_customer(client: httpx.AsyncClient) -> None:
    wa_id = "491700000088"
    payloads = [p.inbound(wa_id, "Neu", p.text(wa_id, f"wamid.N{i}", "hi")) for i in range(6)]
    responses = await asyncio.gather(*(post_webhook(client, body) for body in payloads))
    assert [r.status_code for r in responses] == [200] * 6
    db = runtime_of(client).db
    assert await count(db, crm_messages) == 6
    assert await count(db, crm_contacts) == 1
    [convo] = await rows(db, crm_convos)
    assert convo.unread == 6


async def test_deadlock_victim_is_retried(client: httpx.AsyncClient) -> None:
    processor = get_whatsapp(runtime_of(client)).processor
    calls: list[int] = []

    async def deadlocked_once(*_args: object) -> list[dict[str, object]]:
        calls.append(1)
        if len(calls) == 1:
            raise StorageError(
                "database error: OperationalError: (1213, 'Deadlock found when trying to get "
                "lock; try restarting transaction')"
            )
        return []

    processor.hooks.append(deadlocked_once)
    response = await post_webhook(client, p.inbound(WA, "A", p.text(WA, "wamid.D1", "hi")))
    assert response.status_code == 200
    assert response.json()["messages"] == 1
    assert len(calls) == 2
    assert await count(runtime_of(client).db, crm_messages) == 1


async def test_concurrent_new_customers_do_not_deadlock(client: httpx.AsyncClient) -> None:
    payloads = [
        p.inbound(f"4917100000{i:02d}", f"C{i}", p.text(f"4917100000{i:02d}", f"wamid.C{i}", "hi"))
        for i in range(16)
    ]
    for _round in range(2):  # first messages, then returning customers
        responses = await asyncio.gather(*(post_webhook(client, body) for body in payloads))
        assert [r.status_code for r in responses] == [200] * 16
        payloads = [
            p.inbound(
                f"4917100000{i:02d}", f"C{i}", p.text(f"4917100000{i:02d}", f"wamid.D{i}", "x")
            )
            for i in range(16)
        ]
    db = runtime_of(client).db
    assert (await count(db, crm_contacts), await count(db, crm_messages)) == (16, 32)
    assert {c.unread for c in await rows(db, crm_convos)} == {2}
