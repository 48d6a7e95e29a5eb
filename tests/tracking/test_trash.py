# ruff: noqa: F811  (fixtures imported from tests/tracking/people_rig.py are redefined as parameters)
"""The tracking trash through the API, over SQLite and MariaDB: a deleted site or intent is gone
from every listing and lookup (one test per path), a deleted site takes no ingest and serves no
script, a restore brings everything back unchanged, a restore after the period is 410, and one
tenant cannot touch another's trash."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from service.db.tables.tracking import site_members, sites, track_intents, track_sessions
from service.tracking.sitecache import SiteCache
from tests.tracking.people_rig import ADMIN, Rig, bearer, make_rig, rig, stack  # noqa: F401

DAY = 86_400.0
RETENTION_DAYS = 30  # the setting's default
USER_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _shop(rig: Rig, name: str = "Shop") -> tuple[dict[str, Any], dict[str, str]]:
    site = await rig.site(name)
    owner = await rig.signed_in(site["id"], f"owner@{name.lower()}.example", "owner")
    return site, owner


async def _sync(rig: Rig, site: dict[str, Any]) -> int:
    """One page view of the site's script; the answer's status."""
    now = rig.clock.now()
    body = {
        "site": site["public_key"],
        "visitor": "v_visitor0000000000001",
        "events": [
            {
                "id": f"ev-{now}",
                "type": "page_view",
                "ts": now * 1000,
                "url": f"https://{site['domains'][0]}/",
            }
        ],
        "context": {"url": f"https://{site['domains'][0]}/", "user_agent_hint": "mobile"},
    }
    headers = {"Origin": f"https://{site['domains'][0]}", "User-Agent": USER_AGENT}
    return (await rig.client.post("/t/sync", json=body, headers=headers)).status_code


async def _delete_site(rig: Rig, site_id: int, headers: dict[str, str]) -> Any:
    answer = await rig.client.delete(f"/t/sites/{site_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _rows(rig: Rig, site_id: int) -> dict[str, list[Any]]:
    """Everything of the site a restore must bring back unchanged."""
    found: dict[str, list[Any]] = {}
    async with rig.db.connect() as conn:
        for table in (track_sessions, track_intents, site_members):
            query = select(table).where(table.c.site_id == site_id)
            found[table.name] = sorted(tuple(r) for r in await conn.execute(query))
        found["sites"] = [
            tuple(r) for r in await conn.execute(select(sites).where(sites.c.id == site_id))
        ]
    return found


# ---------------------------------------------------------------- sites


async def test_owners_and_admins_delete_a_site_editors_and_viewers_do_not(rig: Rig) -> None:
    site, owner = await _shop(rig)
    editor = await rig.signed_in(site["id"], "editor@shop.example", "editor")
    viewer = await rig.signed_in(site["id"], "viewer@shop.example", "viewer")
    for headers in (editor, viewer):
        refused = await rig.client.delete(f"/t/sites/{site['id']}", headers=headers)
        assert refused.status_code == 403, refused.text
    deleted = await _delete_site(rig, site["id"], owner)
    assert deleted["id"] == site["id"] and deleted["name"] == "Shop"
    assert _at(deleted["deleted_at"]) == rig.now()
    assert _at(deleted["restorable_until"]) == rig.now() + timedelta(days=RETENTION_DAYS)
    # Deleted twice: the site no longer exists for anyone.
    assert (await rig.client.delete(f"/t/sites/{site['id']}", headers=owner)).status_code == 404
    assert (await rig.client.delete(f"/t/sites/{site['id']}", headers=ADMIN)).status_code == 404
    [record] = await rig.audit("site.deleted")
    assert record["subject"] == f"site:{site['id']}" and record["actor"].startswith("person:")
    assert record["details"]["site_id"] == site["id"]

    other = await rig.site("Other")
    await _delete_site(rig, other["id"], ADMIN)  # an admin deletes any site
    assert [r["actor"] for r in await rig.audit("site.deleted")][1].startswith("admin:")


async def test_a_deleted_site_is_404_to_its_members(rig: Rig) -> None:
    site, owner = await _shop(rig)
    viewer = await rig.signed_in(site["id"], "viewer@shop.example", "viewer")
    intent = await rig.intent(site["id"])
    await _delete_site(rig, site["id"], owner)
    for path in (
        "",
        "/members",
        "/intents",
        f"/intents/{intent}",
        "/dashboard/kpis",
        "/calls",
        "/trash",
        "/ads/summary",
    ):
        for headers in (owner, viewer):
            answer = await rig.client.get(f"/t/sites/{site['id']}{path}", headers=headers)
            assert answer.status_code == 404, (path, answer.text)
    seal = await rig.client.post(
        f"/t/sites/{site['id']}/intents/{intent}/seal", json={"amount": "10"}, headers=owner
    )
    assert seal.status_code == 404


async def test_a_deleted_site_leaves_the_admins_list_and_lookup(rig: Rig) -> None:
    site, owner = await _shop(rig)
    kept = await rig.site("Kept")
    await _delete_site(rig, site["id"], owner)
    listed = await rig.client.get("/admin/sites", headers=ADMIN)
    assert [s["id"] for s in listed.json()["items"]] == [kept["id"]]
    assert (await rig.client.get(f"/admin/sites/{site['id']}", headers=ADMIN)).status_code == 404
    patched = await rig.client.patch(
        f"/admin/sites/{site['id']}", json={"name": "Renamed"}, headers=ADMIN
    )
    assert patched.status_code == 404


async def test_a_deleted_site_leaves_its_members_sites(rig: Rig) -> None:
    site, owner = await _shop(rig)
    kept = await rig.site("Kept")
    await rig.member(kept["id"], "owner@shop.example", "viewer")
    assert len((await rig.client.get("/t/me", headers=owner)).json()["sites"]) == 2
    await _delete_site(rig, site["id"], owner)
    me = (await rig.client.get("/t/me", headers=owner)).json()
    assert [s["id"] for s in me["sites"]] == [kept["id"]]


async def test_a_deleted_site_takes_no_ingest_and_serves_no_script(rig: Rig) -> None:
    site, owner = await _shop(rig)
    script = f"/t/{site['public_key']}.js"
    assert await _sync(rig, site) == 200  # the site is in this process's cache now
    assert (await rig.client.get(script)).status_code == 200
    await _delete_site(rig, site["id"], owner)
    # At once in this process: the cache entry went with the deletion.
    assert await _sync(rig, site) == 404
    assert (await rig.client.get(script)).status_code == 404


async def test_another_process_sees_the_deletion_within_its_cache_ttl(rig: Rig) -> None:
    site, owner = await _shop(rig)
    elsewhere = SiteCache(rig.db, rig.clock)  # another process's cache
    assert await elsewhere.by_key(site["public_key"]) is not None
    await _delete_site(rig, site["id"], owner)
    assert await elsewhere.by_key(site["public_key"]) is not None  # still held
    rig.clock.advance(elsewhere.ttl)
    assert await elsewhere.by_key(site["public_key"]) is None


async def test_a_deleted_sites_calls_token_is_refused(rig: Rig) -> None:
    site, owner = await _shop(rig)
    token = (await rig.client.post(f"/t/sites/{site['id']}/calls-token", headers=owner)).json()
    call = {"caller": "+905321234567", "at": rig.now().isoformat()}
    headers = bearer(token["token"])
    assert (await rig.client.post("/t/calls", json=call, headers=headers)).status_code == 201
    await _delete_site(rig, site["id"], owner)
    call["at"] = (rig.now() + timedelta(seconds=1)).isoformat()
    assert (await rig.client.post("/t/calls", json=call, headers=headers)).status_code == 401


async def test_a_restore_brings_the_site_back_unchanged(rig: Rig) -> None:
    site, owner = await _shop(rig)
    await rig.signed_in(site["id"], "editor@shop.example", "editor")
    session = await rig.tracking_session(site["id"])
    await rig.intent(site["id"], session_id=session)
    await rig.intent(site["id"], kind="whatsapp", ref_code="K7X2QW")
    before = await _rows(rig, site["id"])
    await _delete_site(rig, site["id"], owner)
    rig.clock.advance(RETENTION_DAYS * DAY - 1)  # the last second of the period

    # (The owner's session has run out by now: an admin restores it.)
    restored = await rig.client.post(f"/t/sites/{site['id']}/restore", headers=ADMIN)
    assert restored.status_code == 200, restored.text
    assert restored.json()["role"] == "admin" and restored.json()["name"] == "Shop"
    assert await _rows(rig, site["id"]) == before
    owner = bearer(await rig.login("owner@shop.example"))
    assert (await rig.client.get(f"/t/sites/{site['id']}", headers=owner)).status_code == 200
    assert await _sync(rig, site) == 200
    [record] = await rig.audit("site.restored")
    assert record["subject"] == f"site:{site['id']}" and record["details"]["site_id"] == site["id"]
    assert record["actor"].startswith("admin:")
    again = await rig.client.post(f"/t/sites/{site['id']}/restore", headers=owner)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_deleted")


async def test_a_restore_after_the_period_is_refused(rig: Rig) -> None:
    site, owner = await _shop(rig)
    await _delete_site(rig, site["id"], owner)
    rig.clock.advance(RETENTION_DAYS * DAY)
    owner = bearer(await rig.login("owner@shop.example"))  # a session of today
    for headers in (owner, ADMIN):
        late = await rig.client.post(f"/t/sites/{site['id']}/restore", headers=headers)
        assert late.status_code == 410, late.text
        assert late.json()["error"]["code"] == "expired"
    assert await rig.audit("site.restored") == []


async def test_who_restores_and_lists_a_deleted_site(rig: Rig) -> None:
    site, owner = await _shop(rig)
    editor = await rig.signed_in(site["id"], "editor@shop.example", "editor")
    other, other_owner = await _shop(rig, "Other")
    await _delete_site(rig, site["id"], owner)
    await _delete_site(rig, other["id"], ADMIN)
    rig.clock.advance(60)

    mine = (await rig.client.get("/t/trash/sites", headers=owner)).json()
    assert [s["id"] for s in mine["items"]] == [site["id"]]
    assert mine["items"][0]["role"] == "owner"
    assert (await rig.client.get("/t/trash/sites", headers=editor)).json()["items"] == []
    every = (await rig.client.get("/admin/trash/sites", headers=ADMIN)).json()
    assert [s["id"] for s in every["items"]] == [other["id"], site["id"]]  # latest first
    page = (await rig.client.get("/admin/trash/sites?limit=1", headers=ADMIN)).json()
    rest = await rig.client.get(
        f"/admin/trash/sites?limit=1&cursor={page['next_cursor']}", headers=ADMIN
    )
    assert [s["id"] for s in page["items"] + rest.json()["items"]] == [other["id"], site["id"]]
    assert (await rig.client.get("/admin/trash/sites?cursor=x", headers=ADMIN)).status_code == 400
    assert (await rig.client.get("/admin/trash/sites", headers=owner)).status_code == 401

    # A member who is not an owner, and the owner of another site: as if it did not exist.
    for headers in (editor, other_owner):
        refused = await rig.client.post(f"/t/sites/{site['id']}/restore", headers=headers)
        assert refused.status_code == 404, refused.text
    assert (
        await rig.client.post(f"/t/sites/{other['id']}/restore", headers=ADMIN)
    ).status_code == 200
    assert (
        await rig.client.post(f"/t/sites/{site['id']}/restore", headers=owner)
    ).status_code == 200


async def test_the_owner_of_a_cannot_touch_the_trash_of_b(rig: Rig) -> None:
    a, a_owner = await _shop(rig, "Alpha")
    b, b_owner = await _shop(rig, "Beta")
    a_intent = await rig.intent(a["id"])
    b_intent = await rig.intent(b["id"])
    b_deleted = await rig.intent(b["id"], target="tel:+491700000000")
    assert (
        await rig.client.delete(f"/t/sites/{b['id']}/intents/{b_deleted}", headers=b_owner)
    ).status_code == 200
    for method, path in (
        ("DELETE", f"/t/sites/{b['id']}"),
        ("POST", f"/t/sites/{b['id']}/restore"),
        ("GET", f"/t/sites/{b['id']}/trash"),
        ("DELETE", f"/t/sites/{b['id']}/intents/{b_intent}"),
        ("POST", f"/t/sites/{b['id']}/intents/{b_deleted}/restore"),
        # B's intents under A's own site.
        ("DELETE", f"/t/sites/{a['id']}/intents/{b_intent}"),
        ("POST", f"/t/sites/{a['id']}/intents/{b_deleted}/restore"),
    ):
        answer = await rig.client.request(method, path, headers=a_owner)
        assert answer.status_code == 404, (method, path, answer.text)
    assert "Beta" not in (await rig.client.get("/t/trash/sites", headers=a_owner)).text
    await _delete_site(rig, b["id"], b_owner)
    assert (await rig.client.get("/t/trash/sites", headers=a_owner)).json()["items"] == []
    refused = await rig.client.post(f"/t/sites/{b['id']}/restore", headers=a_owner)
    assert refused.status_code == 404
    # Nothing of B changed; A's own intent is untouched too.
    assert (await rig.intent_row(b["id"], b_intent)).deleted_at is None
    assert (await rig.intent_row(a["id"], a_intent)).deleted_at is None


# ---------------------------------------------------------------- intents


async def _delete_intent(rig: Rig, site_id: int, intent: int, headers: dict[str, str]) -> Any:
    answer = await rig.client.delete(f"/t/sites/{site_id}/intents/{intent}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_editors_delete_intents_owners_restore_them(rig: Rig) -> None:
    site, owner = await _shop(rig)
    editor = await rig.signed_in(site["id"], "editor@shop.example", "editor")
    viewer = await rig.signed_in(site["id"], "viewer@shop.example", "viewer")
    session = await rig.tracking_session(site["id"])
    intent = await rig.intent(site["id"], session_id=session)
    path = f"/t/sites/{site['id']}/intents/{intent}"
    shown = (await rig.client.get(path, headers=owner)).json()
    before = await rig.intent_row(site["id"], intent)

    assert (await rig.client.delete(path, headers=viewer)).status_code == 403
    deleted = await _delete_intent(rig, site["id"], intent, editor)
    assert deleted["id"] == intent and deleted["session"]["id"] == session
    assert _at(deleted["restorable_until"]) == rig.now() + timedelta(days=RETENTION_DAYS)
    assert (await rig.client.delete(path, headers=editor)).status_code == 404  # gone already

    trash = await rig.client.get(f"/t/sites/{site['id']}/trash", headers=owner)
    assert [i["id"] for i in trash.json()["items"]] == [intent]
    assert (await rig.client.get(f"/t/sites/{site['id']}/trash", headers=editor)).status_code == 403
    assert (await rig.client.post(f"{path}/restore", headers=editor)).status_code == 403

    restored = await rig.client.post(f"{path}/restore", headers=owner)
    assert restored.status_code == 200, restored.text
    assert restored.json() == shown
    assert tuple(await rig.intent_row(site["id"], intent)) == tuple(before)
    again = await rig.client.post(f"{path}/restore", headers=owner)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_deleted")
    assert (await rig.client.get(f"/t/sites/{site['id']}/trash", headers=owner)).json()[
        "items"
    ] == []
    [deleted_record] = await rig.audit("intent.deleted")
    [restored_record] = await rig.audit("intent.restored")
    for record in (deleted_record, restored_record):
        assert record["subject"] == f"site:{site['id']}"
        assert record["details"]["intent"] == intent
        assert record["details"]["site_id"] == site["id"]


async def test_an_intent_restore_after_the_period_is_refused(rig: Rig) -> None:
    site, owner = await _shop(rig)
    intent = await rig.intent(site["id"])
    await _delete_intent(rig, site["id"], intent, owner)
    rig.clock.advance(RETENTION_DAYS * DAY)
    late = await rig.client.post(f"/t/sites/{site['id']}/intents/{intent}/restore", headers=ADMIN)
    assert (late.status_code, late.json()["error"]["code"]) == (410, "expired")
    assert (await rig.intent_row(site["id"], intent)).deleted_at is not None


async def test_a_deleted_intent_leaves_the_ledger_and_its_lookup(rig: Rig) -> None:
    site, owner = await _shop(rig)
    kept = await rig.intent(site["id"], ago=timedelta(minutes=2))
    gone = await rig.intent(site["id"])
    await _delete_intent(rig, site["id"], gone, owner)
    ledger = await rig.client.get(f"/t/sites/{site['id']}/intents", headers=owner)
    assert [i["id"] for i in ledger.json()["items"]] == [kept]
    lookup = await rig.client.get(f"/t/sites/{site['id']}/intents/{gone}", headers=owner)
    assert lookup.status_code == 404


async def test_a_deleted_intent_leaves_the_dashboard_counts(rig: Rig) -> None:
    site, owner = await _shop(rig)
    await rig.intent(site["id"])
    gone = await rig.intent(site["id"], target="tel:+905550000000")
    kpis = f"/t/sites/{site['id']}/dashboard/kpis"
    assert (await rig.client.get(kpis, headers=owner)).json()["totals"]["intents"]["phone"] == 2
    await _delete_intent(rig, site["id"], gone, owner)
    assert (await rig.client.get(kpis, headers=owner)).json()["totals"]["intents"]["phone"] == 1
    restored = f"/t/sites/{site['id']}/intents/{gone}/restore"
    assert (await rig.client.post(restored, headers=owner)).status_code == 200
    assert (await rig.client.get(kpis, headers=owner)).json()["totals"]["intents"]["phone"] == 2


async def test_a_deleted_intent_leaves_its_sessions_timeline(rig: Rig) -> None:
    site, owner = await _shop(rig)
    session = await rig.tracking_session(site["id"])
    kept = await rig.intent(site["id"], session_id=session, ago=timedelta(minutes=1))
    gone = await rig.intent(site["id"], session_id=session)
    await _delete_intent(rig, site["id"], gone, owner)
    shown = await rig.client.get(f"/t/sites/{site['id']}/sessions/{session}", headers=owner)
    assert [i["id"] for i in shown.json()["intents"]] == [kept]


async def test_a_deleted_intent_leaves_the_lifecycle(rig: Rig) -> None:
    site, owner = await _shop(rig)
    intent = await rig.intent(site["id"])
    await _delete_intent(rig, site["id"], intent, owner)
    path = f"/t/sites/{site['id']}/intents/{intent}"
    patched = await rig.client.patch(path, json={"status": "junk"}, headers=owner)
    junk = await rig.client.post(f"{path}/junk", headers=owner)
    sealed = await rig.client.post(f"{path}/seal", json={"amount": "10"}, headers=owner)
    assert [r.status_code for r in (patched, junk, sealed)] == [404, 404, 404]
    assert (await rig.intent_row(site["id"], intent)).status == "pending"


async def test_a_deleted_phone_intent_is_not_matched_to_calls(rig: Rig) -> None:
    site, owner = await _shop(rig)
    token = (await rig.client.post(f"/t/sites/{site['id']}/calls-token", headers=owner)).json()
    intent = await rig.intent(site["id"], ago=timedelta(minutes=5))
    await _delete_intent(rig, site["id"], intent, owner)
    call = {"caller": "+905321234567", "at": rig.now().isoformat()}
    answer = await rig.client.post("/t/calls", json=call, headers=bearer(token["token"]))
    assert answer.status_code == 201, answer.text
    assert answer.json()["matched"] is False
    assert (await rig.intent_row(site["id"], intent)).call_at is None


async def test_the_sites_trash_pages_by_deletion_time(rig: Rig) -> None:
    site, owner = await _shop(rig)
    intents = [await rig.intent(site["id"], target=f"tel:+9055500000{n}") for n in range(3)]
    for intent in intents:
        await _delete_intent(rig, site["id"], intent, owner)
        rig.clock.advance(1)
    await _delete_intent(rig, site["id"], await rig.intent(site["id"], target="tel:+9"), owner)
    base = f"/t/sites/{site['id']}/trash"
    seen: list[int] = []
    cursor = ""
    while True:
        page = (await rig.client.get(f"{base}?limit=2&cursor={cursor}", headers=owner)).json()
        seen += [i["id"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen[1:] == intents[::-1] and len(seen) == 4
    assert (await rig.client.get(f"{base}?cursor=nope", headers=owner)).status_code == 400
