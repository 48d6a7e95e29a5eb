"""The CRM trash, over SQLite and MariaDB: deleted contacts and notes are listed and restored
by admins within the retention period (410 after it), and purged for good after it with their
conversations, messages and notes - in batches, once, and never a contact its customer revived."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from core.clock import ManualClock
from service.db.tables.crm import crm_contacts, crm_convos, crm_messages, crm_notes
from service.db.tables.foundation import audit_events
from service.db.types import from_timestamp
from service.tracking.maintenance_retention import Budget
from service.tracking.trash_job import TrashPurge
from service.tracking.trash_purge import Purged
from service.tracking.trash_window import purge_cutoff
from service.whatsapp.crm_purge import purge_contact
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import post_webhook, runtime_of
from tests.whatsapp.dbutil import rows

ADMIN = {"Authorization": "Bearer test-admin-key"}
DAY = 86_400.0
PERIOD = 30
_messages = iter(range(1_000_000))


async def _contact(client: httpx.AsyncClient, wa_id: str, name: str, messages: int = 1) -> int:
    """A customer who wrote ``messages`` messages; the contact's id."""
    for _ in range(messages):
        n = next(_messages)
        payload = p.inbound(wa_id, name, p.text(wa_id, f"wamid.trash-{n}", f"text {n}"))
        assert (await post_webhook(client, payload)).status_code == 200
    [row] = await rows(runtime_of(client).db, crm_contacts, crm_contacts.c.wa_id == wa_id)
    return int(row.id)


async def _note(client: httpx.AsyncClient, contact: int, body: str) -> int:
    answer = await client.post(
        f"/admin/crm/contacts/{contact}/notes", json={"body": body}, headers=ADMIN
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


async def _delete(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.delete(path, headers=ADMIN)
    assert answer.status_code == 204, answer.text


async def _get(client: httpx.AsyncClient, path: str, status: int = 200) -> Any:
    answer = await client.get(path, headers=ADMIN)
    assert answer.status_code == status, answer.text
    return answer.json()


async def _audit(client: httpx.AsyncClient, action: str) -> list[Any]:
    return await rows(runtime_of(client).db, audit_events, audit_events.c.action == action)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_deleted_contact_is_restored_with_its_notes(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    contact = await _contact(client, "905300000001", "Ayşe")
    await _note(client, contact, "VIP")
    await _delete(client, f"/admin/crm/contacts/{contact}")
    deleted_at = from_timestamp(clock.now())
    assert (await _get(client, "/admin/crm/contacts?q=Ayşe"))["items"] == []
    await _get(client, f"/admin/crm/contacts/{contact}/notes", 404)

    trash = await _get(client, "/admin/crm/trash/contacts")
    [item] = trash["items"]
    assert (item["id"], item["name"], trash["next_cursor"]) == (contact, "Ayşe", None)
    assert _at(item["deleted_at"]) == deleted_at
    assert _at(item["restorable_until"]) == deleted_at + timedelta(days=PERIOD)

    clock.advance(PERIOD * DAY - 1)
    restored = await client.post(f"/admin/crm/contacts/{contact}/restore", headers=ADMIN)
    assert restored.status_code == 200, restored.text
    assert restored.json()["id"] == contact and restored.json()["name"] == "Ayşe"
    assert [c["id"] for c in (await _get(client, "/admin/crm/contacts?q=Ayşe"))["items"]] == [
        contact
    ]
    notes = await _get(client, f"/admin/crm/contacts/{contact}/notes")
    assert [n["body"] for n in notes["items"]] == ["VIP"]
    assert (await _get(client, "/admin/crm/trash/contacts"))["items"] == []
    [record] = await _audit(client, "crm.contact.restore")
    assert (record.subject, record.actor) == (f"contact:{contact}", "api-key")

    again = await client.post(f"/admin/crm/contacts/{contact}/restore", headers=ADMIN)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_deleted")
    unknown = await client.post("/admin/crm/contacts/999999/restore", headers=ADMIN)
    assert unknown.status_code == 404


async def test_a_contact_restore_after_the_period_is_refused(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    contact = await _contact(client, "905300000002", "Mehmet")
    await _delete(client, f"/admin/crm/contacts/{contact}")
    clock.advance(PERIOD * DAY)
    late = await client.post(f"/admin/crm/contacts/{contact}/restore", headers=ADMIN)
    assert (late.status_code, late.json()["error"]["code"]) == (410, "expired")
    assert (await _get(client, "/admin/crm/contacts?q=Mehmet"))["items"] == []


async def test_deleted_notes_are_listed_and_restored_to_a_live_contact(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    contact = await _contact(client, "905300000003", "Zeynep")
    kept = await _note(client, contact, "kept")
    gone = await _note(client, contact, "gone")
    await _delete(client, f"/admin/crm/notes/{gone}")
    trash = await _get(client, f"/admin/crm/contacts/{contact}/notes/trash")
    assert [n["id"] for n in trash["items"]] == [gone]
    restored = await client.post(f"/admin/crm/notes/{gone}/restore", headers=ADMIN)
    assert restored.status_code == 200, restored.text
    assert restored.json()["body"] == "gone"
    notes = await _get(client, f"/admin/crm/contacts/{contact}/notes")
    assert sorted(n["id"] for n in notes["items"]) == [kept, gone]
    [record] = await _audit(client, "crm.note.restore")
    assert record.subject == f"contact:{contact}" and record.details["note"] == gone

    # A note of a deleted contact comes back with the contact, not before it.
    await _delete(client, f"/admin/crm/notes/{gone}")
    await _delete(client, f"/admin/crm/contacts/{contact}")
    refused = await client.post(f"/admin/crm/notes/{gone}/restore", headers=ADMIN)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "contact_deleted")
    await _get(client, f"/admin/crm/contacts/{contact}/notes/trash", 404)
    assert (
        await client.post(f"/admin/crm/contacts/{contact}/restore", headers=ADMIN)
    ).status_code == 200
    clock.advance(PERIOD * DAY)
    late = await client.post(f"/admin/crm/notes/{gone}/restore", headers=ADMIN)
    assert (late.status_code, late.json()["error"]["code"]) == (410, "expired")
    live = await client.post(f"/admin/crm/notes/{kept}/restore", headers=ADMIN)
    assert (live.status_code, live.json()["error"]["code"]) == (409, "not_deleted")


async def test_the_contact_trash_pages_by_deletion_time(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    ids = [await _contact(client, f"90530000010{n}", f"Kişi {n}") for n in range(4)]
    await _delete(client, f"/admin/crm/contacts/{ids[0]}")
    clock.advance(1)
    for contact in ids[1:]:  # three deletions at one instant
        await _delete(client, f"/admin/crm/contacts/{contact}")
    seen: list[int] = []
    cursor = ""
    while True:
        page = await _get(client, f"/admin/crm/trash/contacts?limit=2&cursor={cursor}")
        seen += [c["id"] for c in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == [ids[3], ids[2], ids[1], ids[0]]
    await _get(client, "/admin/crm/trash/contacts?cursor=bad", 400)


async def test_the_trash_routes_are_for_admins(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/admin/crm/trash/contacts"),
        ("POST", "/admin/crm/contacts/1/restore"),
        ("GET", "/admin/crm/contacts/1/notes/trash"),
        ("POST", "/admin/crm/notes/1/restore"),
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            answer = await client.request(method, path, headers=headers)
            assert answer.status_code == 401, (method, path)


async def _crm_rows(client: httpx.AsyncClient, contact: int) -> dict[str, int]:
    db = runtime_of(client).db
    convos = await rows(db, crm_convos, crm_convos.c.contact_id == contact)
    ids = [c.id for c in convos]
    messages = await rows(db, crm_messages, crm_messages.c.convo_id.in_(ids)) if ids else []
    return {
        "contacts": len(await rows(db, crm_contacts, crm_contacts.c.id == contact)),
        "convos": len(convos),
        "messages": len(messages),
        "notes": len(await rows(db, crm_notes, crm_notes.c.contact_id == contact)),
    }


async def test_the_purge_removes_contacts_and_notes_after_the_period_only(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    job = runtime_of(client).facility(TrashPurge)
    gone = await _contact(client, "905300000201", "Gone", messages=3)
    await _note(client, gone, "about gone")
    recent = await _contact(client, "905300000202", "Recent")
    live = await _contact(client, "905300000203", "Live")
    kept_note = await _note(client, live, "kept")
    old_note = await _note(client, live, "old")
    await _delete(client, f"/admin/crm/contacts/{gone}")
    await _delete(client, f"/admin/crm/notes/{old_note}")
    clock.advance(DAY)
    await _delete(client, f"/admin/crm/contacts/{recent}")
    before = {c: await _crm_rows(client, c) for c in (gone, recent, live)}
    assert before[gone] == {"contacts": 1, "convos": 1, "messages": 3, "notes": 1}

    clock.advance(PERIOD * DAY - DAY - 1)
    early = await job.run_once()
    assert (early.contacts, early.notes) == (0, 0)
    assert {c: await _crm_rows(client, c) for c in (gone, recent, live)} == before

    clock.advance(1)
    purged = await job.run_once()
    assert (purged.contacts, purged.notes, purged.complete) == (1, 1, True)
    assert await _crm_rows(client, gone) == {"contacts": 0, "convos": 0, "messages": 0, "notes": 0}
    assert await _crm_rows(client, recent) == before[recent]
    notes = await rows(runtime_of(client).db, crm_notes, crm_notes.c.contact_id == live)
    assert [n.id for n in notes] == [kept_note]
    [contact_record] = await _audit(client, "crm.contact.purge")
    assert contact_record.subject == f"contact:{gone}"
    assert contact_record.details["rows"] == {"crm_messages": 3, "crm_convos": 1, "crm_notes": 1}
    [note_record] = await _audit(client, "crm.note.purge")
    assert note_record.subject == f"contact:{live}" and note_record.details["note"] == old_note
    restore = await client.post(f"/admin/crm/contacts/{gone}/restore", headers=ADMIN)
    assert restore.status_code == 404

    again = await job.run_once()  # idempotent
    assert (again.contacts, again.notes) == (0, 0)
    assert len(await _audit(client, "crm.contact.purge")) == 1

    clock.advance(DAY)
    assert (await job.run_once()).contacts == 1
    assert (await _crm_rows(client, recent))["contacts"] == 0


async def test_a_contact_purge_is_batched_and_resumes(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    contact = await _contact(client, "905300000301", "Chatty", messages=3)
    await _delete(client, f"/admin/crm/contacts/{contact}")
    db = runtime_of(client).db
    now = from_timestamp(clock.now()) + timedelta(days=PERIOD)
    cutoff = purge_cutoff(now, PERIOD)
    spent = Budget(lambda: 1.0, 0.0)

    first = Purged()
    assert not await purge_contact(db, contact, now, cutoff, spent, first, batch=2)
    assert await _crm_rows(client, contact) == {
        "contacts": 1,
        "convos": 1,
        "messages": 1,
        "notes": 0,
    }
    rest = Purged()
    assert await purge_contact(db, contact, now, cutoff, Budget(lambda: 0.0, 1e9), rest, batch=2)
    assert (await _crm_rows(client, contact))["contacts"] == 0
    assert not await purge_contact(db, contact, now, cutoff, Budget(lambda: 0.0, 1e9), Purged())
    assert len(await _audit(client, "crm.contact.purge")) == 1


async def test_a_contact_its_customer_revived_is_not_purged(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    contact = await _contact(client, "905300000401", "Back")
    await _delete(client, f"/admin/crm/contacts/{contact}")
    clock.advance(DAY)
    await _contact(client, "905300000401", "Back")  # writes again: a live contact again
    [row] = await rows(runtime_of(client).db, crm_contacts, crm_contacts.c.id == contact)
    assert row.deleted_at is None
    clock.advance(PERIOD * DAY)
    purged = await runtime_of(client).facility(TrashPurge).run_once()
    assert purged.contacts == 0
    assert (await _crm_rows(client, contact))["messages"] == 2
    async with runtime_of(client).db.connect() as conn:
        query = select(crm_contacts.c.deleted_at).where(crm_contacts.c.id == contact)
        assert (await conn.execute(query)).scalar_one() is None
