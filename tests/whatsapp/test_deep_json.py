"""Caller-supplied JSON nested too deeply for MariaDB's JSON columns (JSON_VALID refuses 32
levels) never turns into a 5xx: webhook parts are trimmed (the raw delivery keeps them),
template components are a 422. Runs on SQLite and MariaDB."""

from __future__ import annotations

from typing import Any

import httpx

from core.json_depth import MAX_STORED_DEPTH, json_depth
from service.db.tables.crm import crm_messages, wa_webhook_events
from service.whatsapp.webhook import decode_raw
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import post_webhook, runtime_of
from tests.whatsapp.dbutil import count, message_by_provider_id, rows
from tests.whatsapp.test_send import inbound_convo, send

WA = "905321234567"


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "x"}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def test_deeply_nested_message_parts_are_stored_trimmed(client: httpx.AsyncClient) -> None:
    first = await post_webhook(client, p.inbound(WA, "Ayşe", p.text(WA, "wamid.OK", "Selam")))
    assert first.status_code == 200
    db = runtime_of(client).db
    kept = await message_by_provider_id(db, "wamid.OK")

    deep = p.message(
        WA,
        "wamid.DEEP",
        "text",
        {"body": "merhaba", "extra": nested(40)},
        context={"id": "wamid.OK", "x": nested(40)},
        referral=nested(200),
    )
    response = await post_webhook(client, p.inbound(WA, "Ayşe", deep))
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == 1

    stored = await message_by_provider_id(db, "wamid.DEEP")
    assert stored.body == "merhaba"
    assert stored.reply_to == "wamid.OK"
    assert json_depth(stored.payload) <= MAX_STORED_DEPTH + 1
    assert stored.payload["content"]["body"] == "merhaba"
    [event] = await rows(
        db, wa_webhook_events, wa_webhook_events.c.id == response.json()["event_id"]
    )
    assert event.state == "processed"
    assert sum("trimmed" in issue for issue in event.issues) == 3
    # The raw delivery still holds every level.
    raw = decode_raw(event.body, event.body_encoding)
    assert b'"leaf"' in raw and raw.count(b'{"a":') >= 200
    # The earlier message is untouched.
    assert await message_by_provider_id(db, "wamid.OK") == kept


async def test_template_components_nested_too_deeply_are_422(client: httpx.AsyncClient) -> None:
    convo_id = await inbound_convo(client)
    db = runtime_of(client).db
    before = await count(db, crm_messages)
    for levels in (MAX_STORED_DEPTH, 40, 300):
        components = [{"type": "body", "parameters": [nested(levels)]}]
        template = {"name": "order_update", "language": "tr", "components": components}
        response = await send(client, convo_id=convo_id, template=template)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_failed"
        assert error["details"][0]["field"] == "body.template.components"
    assert await count(db, crm_messages) == before

    # components list, component object, parameters list: three levels of our own.
    fits = [{"type": "body", "parameters": [nested(MAX_STORED_DEPTH - 3)]}]
    template = {"name": "order_update", "language": "tr", "components": fits}
    response = await send(client, convo_id=convo_id, template=template)
    assert response.status_code == 202, response.text
    assert await count(db, crm_messages) == before + 1


async def test_template_numbers_outside_64_bits_are_422(client: httpx.AsyncClient) -> None:
    """The JSON parser turned such integers into floats, stored altered (and beyond reach of
    the send job's orjson had they arrived exact): a 422 before anything is stored."""
    convo_id = await inbound_convo(client)
    db = runtime_of(client).db
    before = await count(db, crm_messages)
    for number in (2**64, -(2**63) - 1, 10**30):
        components = [{"type": "body", "parameters": [{"type": "text", "n": number}]}]
        template = {"name": "order_update", "language": "tr", "components": components}
        response = await send(client, convo_id=convo_id, template=template)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["field"] == "body.template.components"
    assert await count(db, crm_messages) == before
