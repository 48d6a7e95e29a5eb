# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
from __future__ import annotations

from typing import Any

import httpx

from core.clock import ManualClock
from service.db.tables.crm import crm_convos
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import post_webhook, runtime_of
from tests.whatsapp.dbutil import rows

ADMIN = {"Authorization": "Bearer test-admin-key"}


async def say(client: httpx.AsyncClient, wa_id: str, name: str, msg_id: str, ts: int) -> None:
    payload = p.inbound(wa_id, name, p.text(wa_id, msg_id, f"text {msg_id}", ts=ts))
    assert (await post_webhook(client, payload)).status_code == 200


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


ADMIN_ROUTES = [
    ("GET", "/admin/crm/convos"),
    ("GET", "/admin/crm/convos/1"),
    ("GET", "/admin/crm/convos/1/messages"),
    ("POST", "/admin/crm/convos/1/close"),
    ("POST", "/admin/crm/convos/1/reopen"),
    ("POST", "/admin/crm/convos/1/read"),
    ("GET", "/admin/crm/contacts?q=a"),
    ("PATCH", "/admin/crm/contacts/1"),
    ("DELETE", "/admin/crm/contacts/1"),
    ("GET", "/admin/crm/contacts/1/notes"),
    ("POST", "/admin/crm/contacts/1/notes"),
    ("DELETE", "/admin/crm/notes/1"),
    ("POST", "/admin/wa/send"),
    ("POST", "/admin/wa/events/1/replay"),
]


async def test_every_crm_route_needs_the_admin_key(client: httpx.AsyncClient) -> None:
    for method, path in ADMIN_ROUTES:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}):
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)


async def test_conversations_sorted_by_activity_with_filters_and_cursor(
    client: httpx.AsyncClient,
) -> None:
    for index in range(5):
        await say(client, f"90500000000{index}", f"C{index}", f"m{index}", 1_700_000_000 + index)
    first = await get(client, "/admin/crm/convos", limit=2)
    assert [c["contact_name"] for c in first["items"]] == ["C4", "C3"]
    assert first["has_more"] is True
    second = await get(client, "/admin/crm/convos", limit=2, cursor=first["next_cursor"])
    third = await get(client, "/admin/crm/convos", limit=2, cursor=second["next_cursor"])
    assert [c["contact_name"] for c in second["items"] + third["items"]] == ["C2", "C1", "C0"]
    assert third["has_more"] is False and third["next_cursor"] is None
    assert first["items"][0]["window_open"] is True
    assert first["items"][0]["last_message"]["body"] == "text m4"
    assert first["items"][0]["last_message"]["direction"] == "in"

    convo_id = first["items"][0]["id"]
    assert (await client.post(f"/admin/crm/convos/{convo_id}/close", headers=ADMIN)).json()[
        "status"
    ] == "closed"
    await client.post(f"/admin/crm/convos/{second['items'][0]['id']}/read", headers=ADMIN)
    closed = await get(client, "/admin/crm/convos", status="closed")
    assert [c["id"] for c in closed["items"]] == [convo_id]
    unread = await get(client, "/admin/crm/convos", status="open", unread="true")
    assert [c["contact_name"] for c in unread["items"]] == ["C3", "C1", "C0"]
    assert (await get(client, "/admin/crm/convos", channel="email"))["items"] == []


async def test_bad_list_queries_are_422(client: httpx.AsyncClient) -> None:
    for query in (
        {"status": "archived"},
        {"limit": "0"},
        {"limit": "1000"},
        {"unread": "maybe"},
        {"x": "1"},
    ):
        response = await client.get("/admin/crm/convos", params=query, headers=ADMIN)
        assert response.status_code == 422, query
        assert response.json()["error"]["code"] == "validation_failed"


async def test_forged_cursor_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/crm/convos", params={"cursor": "bm9wZQ"}, headers=ADMIN)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


async def test_message_pages_before_and_after(client: httpx.AsyncClient) -> None:
    for index in range(7):
        await say(client, "905000000001", "A", f"m{index}", 1_700_000_000 + index)
    [convo] = await rows(runtime_of(client).db, crm_convos)
    path = f"/admin/crm/convos/{convo.id}/messages"
    latest = await get(client, path, limit=3)
    bodies = [m["body"] for m in latest["items"]]
    assert bodies == ["text m4", "text m5", "text m6"]
    assert latest["has_more"] is True and latest["next_cursor"] is None
    older = await get(client, path, limit=3, before=latest["prev_cursor"])
    assert [m["body"] for m in older["items"]] == ["text m1", "text m2", "text m3"]
    oldest = await get(client, path, limit=3, before=older["prev_cursor"])
    assert [m["body"] for m in oldest["items"]] == ["text m0"]
    assert oldest["has_more"] is False and oldest["prev_cursor"] is None
    newer = await get(client, path, limit=2, after=oldest["next_cursor"])
    assert [m["body"] for m in newer["items"]] == ["text m1", "text m2"]
    assert newer["has_more"] is True
    both = await client.get(path, params={"before": 5, "after": 1}, headers=ADMIN)
    assert both.status_code == 422
    assert (await client.get("/admin/crm/convos/999/messages", headers=ADMIN)).status_code == 404


async def test_conversation_card_and_reopen_rules(client: httpx.AsyncClient) -> None:
    await say(client, "905000000001", "Ayşe", "m1", 1_700_000_000)
    [convo] = await rows(runtime_of(client).db, crm_convos)
    card = await get(client, f"/admin/crm/convos/{convo.id}")
    assert card["contact"]["wa_id"] == "905000000001"
    assert card["contact"]["whatsapp_consent"] is False
    assert card["convo"]["unread"] == 1
    await client.post(f"/admin/crm/convos/{convo.id}/close", headers=ADMIN)
    await say(client, "905000000001", "Ayşe", "m2", 1_700_000_001)  # opens a new conversation
    clash = await client.post(f"/admin/crm/convos/{convo.id}/reopen", headers=ADMIN)
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "already_open"
    assert (await client.get("/admin/crm/convos/424242", headers=ADMIN)).status_code == 404
    huge = await client.get(f"/admin/crm/convos/{2**70}", headers=ADMIN)
    assert huge.status_code == 404


def names(found: Any) -> list[str]:
    return sorted(c["name"] for c in found["items"])


async def test_contact_update_notes_and_search(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await say(client, "905321234567", "Ayşe Yılmaz", "m1", 1_700_000_000)
    await say(client, "491701234567", "Jonas 100%", "m2", 1_700_000_000)
    [first, _second] = await rows(runtime_of(client).db, crm_convos)
    contact_id = first.contact_id
    patch = await client.patch(
        f"/admin/crm/contacts/{contact_id}",
        json={"email": "ayse@example.com", "locale": "de", "phone": "+90 532 123 45 67"},
        headers=ADMIN,
    )
    assert patch.status_code == 200
    assert (patch.json()["email"], patch.json()["locale"]) == ("ayse@example.com", "de")
    for bad in ({"locale": "fr"}, {"email": "not-an-email"}, {"name": None}, {"wa_id": "1"}):
        response = await client.patch(f"/admin/crm/contacts/{contact_id}", json=bad, headers=ADMIN)
        assert response.status_code == 422, bad

    note = await client.post(
        f"/admin/crm/contacts/{contact_id}/notes", json={"body": "VIP müşteri"}, headers=ADMIN
    )
    assert note.status_code == 201
    clock.advance(1)
    await client.post(f"/admin/crm/contacts/{contact_id}/notes", json={"body": "2."}, headers=ADMIN)
    notes = await get(client, f"/admin/crm/contacts/{contact_id}/notes")
    assert [n["body"] for n in notes["items"]] == ["2.", "VIP müşteri"]
    assert notes["items"][1]["created_by"] == "api-key"
    deleted = await client.delete(f"/admin/crm/notes/{note.json()['id']}", headers=ADMIN)
    assert deleted.status_code == 204
    again = await client.delete(f"/admin/crm/notes/{note.json()['id']}", headers=ADMIN)
    assert again.status_code == 404
    assert [
        n["body"] for n in (await get(client, f"/admin/crm/contacts/{contact_id}/notes"))["items"]
    ] == ["2."]
    empty = await client.post(
        f"/admin/crm/contacts/{contact_id}/notes", json={"body": ""}, headers=ADMIN
    )
    assert empty.status_code == 422

    assert names(await get(client, "/admin/crm/contacts", q="ayşe")) == ["Ayşe Yılmaz"]
    assert names(await get(client, "/admin/crm/contacts", q="+49 170")) == ["Jonas 100%"]
    assert names(await get(client, "/admin/crm/contacts", q="100%")) == ["Jonas 100%"]
    assert names(await get(client, "/admin/crm/contacts", q="%")) == ["Jonas 100%"]
    assert names(await get(client, "/admin/crm/contacts", q="example.com")) == ["Ayşe Yılmaz"]
    assert (await get(client, "/admin/crm/contacts", q="nobody"))["items"] == []


async def test_routes_are_documented_in_openapi(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    assert "post" in paths["/admin/wa/send"] and "get" in paths["/webhooks/wa"]
    assert "post" in paths["/webhooks/wa"]
    assert "get" in paths["/admin/crm/convos/{convo_id}/messages"]
    send_schema = paths["/admin/wa/send"]["post"]["requestBody"]["content"]["application/json"]
    assert send_schema["schema"]["$ref"].endswith("/SendIn")


async def test_malformed_path_ids_are_404(client: httpx.AsyncClient) -> None:
    for raw in ("abc", "-1", "0", "١٢", str(2**64), "1e3"):
        response = await client.get(f"/admin/crm/convos/{raw}", headers=ADMIN)
        assert response.status_code == 404, raw
        assert response.json()["error"]["code"] == "not_found"


async def test_soft_deleted_contact_is_hidden_and_revived_by_a_new_message(
    client: httpx.AsyncClient,
) -> None:
    await say(client, "905000000001", "Ayşe", "m1", 1_700_000_000)
    [convo] = await rows(runtime_of(client).db, crm_convos)
    deleted = await client.delete(f"/admin/crm/contacts/{convo.contact_id}", headers=ADMIN)
    assert deleted.status_code == 204
    assert (await get(client, "/admin/crm/convos"))["items"] == []
    assert (await get(client, "/admin/crm/contacts", q="Ayşe"))["items"] == []
    gone = await client.patch(
        f"/admin/crm/contacts/{convo.contact_id}", json={"locale": "de"}, headers=ADMIN
    )
    assert gone.status_code == 404
    await say(client, "905000000001", "Ayşe", "m2", 1_700_000_001)
    listed = (await get(client, "/admin/crm/convos"))["items"]  # the history is back too
    assert [(c["id"], c["status"]) for c in listed] == [
        (listed[0]["id"], "open"),
        (convo.id, "closed"),
    ]
    assert listed[0]["id"] != convo.id
