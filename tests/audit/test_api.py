# ruff: noqa: F811  (fixtures imported from tests/tracking/people_rig.py are redefined as parameters)
"""The audit log over HTTP, and the changes that write it (in-process backends with SQLite, the
real Redis with MariaDB).

- ``GET /t/sites/{id}/audit``: the site's owners and platform admins read only that site's
  records; editors and viewers are 403, anyone else 404, no credentials 401.
- ``GET /admin/audit``: platform admins read every record, by site, action, subject, actor,
  time; a person is 401.
- Changes of sites, members and roles, intents (status, seal, junk) write records with the site,
  before/after and the request id of the HTTP request; platform records have no site.
"""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

from sqlalchemy import update

from service.audit.verify import verify
from service.db.tables.foundation import audit_events
from tests.tracking.people_rig import ADMIN, Rig, bearer, make_rig, rig, stack  # noqa: F401


async def _records(rig: Rig, url: str, headers: dict[str, str], **params: Any) -> Any:
    answer = await rig.client.get(url, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return answer.json()


async def _member(rig: Rig, site_id: int, email: str, role: str) -> tuple[int, dict[str, str]]:
    await rig.person(email)
    invited = await rig.member(site_id, email, role)
    return int(invited["member"]["person_id"]), bearer(await rig.login(email))


async def test_owners_and_admins_read_a_sites_log_nobody_else(rig: Rig) -> None:
    a = (await rig.site("Shop A"))["id"]
    b = (await rig.site("Shop B"))["id"]
    _, owner_a = await _member(rig, a, "owner@a.example", "owner")
    _, editor_a = await _member(rig, a, "editor@a.example", "editor")
    _, viewer_a = await _member(rig, a, "viewer@a.example", "viewer")
    _, owner_b = await _member(rig, b, "owner@b.example", "owner")
    url_a, url_b = f"/t/sites/{a}/audit", f"/t/sites/{b}/audit"

    mine = await _records(rig, url_a, owner_a)
    assert {item["site_id"] for item in mine["items"]} == {a}
    assert [item["action"] for item in mine["items"]] == [
        "site.member.added",
        "site.member.added",
        "site.member.added",
        "site.created",
    ]
    assert [item["seq"] for item in mine["items"]] == [4, 3, 2, 1]
    assert mine["next_after"] is None
    theirs = await _records(rig, url_b, owner_b)
    assert {item["site_id"] for item in theirs["items"]} == {b} and len(theirs["items"]) == 2
    assert "Shop B" not in str(mine) and "owner@b" not in str(mine)

    for headers in (editor_a, viewer_a):
        refused = await rig.client.get(url_a, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
    for url, headers in ((url_b, owner_a), (url_a, owner_b), (url_b, editor_a)):
        hidden = await rig.client.get(url, headers=headers)
        assert hidden.status_code == 404, (url, hidden.text)
        assert "Shop" not in hidden.text
    assert (await rig.client.get(f"/t/sites/{b + 1000}/audit", headers=ADMIN)).status_code == 404
    assert (await rig.client.get(url_a)).status_code == 401
    # A filter naming another site is no way out of the caller's own.
    extra = await rig.client.get(url_a, params={"site_id": b}, headers=owner_a)
    assert extra.status_code == 422

    as_admin = await _records(rig, url_b, ADMIN)
    assert as_admin == theirs

    everything = await _records(rig, "/admin/audit", ADMIN, limit=500)
    sites = {item["site_id"] for item in everything["items"]}
    assert sites == {a, b, None}  # people were added: platform records
    persons = await _records(rig, "/admin/audit", ADMIN, platform="true")
    actions = {item["action"] for item in persons["items"]}
    assert {"person.created", "person.session.created"} <= actions
    assert {item["site_id"] for item in persons["items"]} == {None}
    assert all(item["subject"].startswith("person:") for item in persons["items"])
    only_b = await _records(rig, "/admin/audit", ADMIN, site_id=b)
    assert only_b == theirs
    assert (await rig.client.get("/admin/audit", headers=owner_a)).status_code == 401

    assert all(report.ok for report in await verify(rig.db))


async def test_pages_filters_and_time_windows(rig: Rig) -> None:
    site = (await rig.site("Paged"))["id"]
    first = rig.now()
    for n in range(4):
        rig.clock.advance(60)
        changed = await rig.client.patch(
            f"/admin/sites/{site}", json={"name": f"Paged {n}"}, headers=ADMIN
        )
        assert changed.status_code == 200, changed.text
    url = f"/t/sites/{site}/audit"
    page = await _records(rig, url, ADMIN, limit=2, action="site.updated")
    assert [item["after"] for item in page["items"]] == [{"name": "Paged 3"}, {"name": "Paged 2"}]
    rest = await _records(rig, url, ADMIN, limit=2, action="site.updated", after=page["next_after"])
    assert [item["after"] for item in rest["items"]] == [{"name": "Paged 1"}, {"name": "Paged 0"}]
    last = await _records(rig, url, ADMIN, limit=2, action="site.updated", after=rest["next_after"])
    assert last == {"items": [], "next_after": None}

    since = (first + timedelta(seconds=90)).isoformat()
    until = (first + timedelta(seconds=210)).isoformat()
    window = await _records(rig, url, ADMIN, since=since, until=until)
    assert [item["before"] for item in window["items"]] == [
        {"name": "Paged 1"},
        {"name": "Paged 0"},
    ]
    # The same instant in another offset selects the same records.
    shifted = (first + timedelta(seconds=90)).astimezone(timezone(timedelta(hours=3)))
    assert await _records(rig, url, ADMIN, since=shifted.isoformat(), until=until) == window

    admin = page["items"][0]["actor"]
    by_actor = await _records(rig, "/admin/audit", ADMIN, subject=f"site:{site}", actor=admin)
    assert [item["action"] for item in by_actor["items"]] == ["site.updated"] * 4 + ["site.created"]
    nobody = await _records(rig, "/admin/audit", ADMIN, subject=f"site:{site}", actor="person:1")
    assert nobody["items"] == []

    for params in (
        {"since": "0001-01-01T00:00:00+14:00"},
        {"until": "9999-12-31T23:00:00-14:00"},
    ):
        refused = await rig.client.get(url, params=params, headers=ADMIN)
        assert refused.status_code == 422, refused.text
        assert "since and until lie between" in refused.text
    for params in (
        {"limit": "0"},
        {"limit": "501"},
        {"after": "0"},
        {"since": "yesterday"},
        {"until": "0.5"},
        {"since": "1780000000"},
        {"since": "2026-01-01T00:00:00"},  # no offset
    ):
        assert (await rig.client.get(url, params=params, headers=ADMIN)).status_code == 422


async def test_changes_are_recorded_with_before_after_and_the_request_id(rig: Rig) -> None:
    site = (await rig.site("Wired", config={"score": {"phone": 2}}))["id"]
    owner_id, owner = await _member(rig, site, "owner@wired.example", "owner")
    member_id, _ = await _member(rig, site, "member@wired.example", "viewer")

    changed = await rig.client.patch(
        f"/t/sites/{site}/members/{member_id}",
        json={"role": "editor"},
        headers={**owner, "X-Request-ID": "req-role-change-1"},
    )
    assert changed.status_code == 200, changed.text
    removed = await rig.client.delete(
        f"/t/sites/{site}/members/{member_id}", headers={**owner, "X-Request-ID": "req-remove-1"}
    )
    assert removed.status_code == 200, removed.text
    patched = await rig.client.patch(
        f"/admin/sites/{site}",
        json={"currency": "EUR", "config": {"score": {"wa": 1}}, "name": "Wired"},
        headers={**ADMIN, "X-Request-ID": "req-site-1"},
    )
    assert patched.status_code == 200, patched.text
    intent = await rig.intent(site)
    junked = await rig.client.post(
        f"/t/sites/{site}/intents/{intent}/junk", headers={**owner, "X-Request-ID": "req-junk"}
    )
    assert junked.status_code == 200, junked.text
    reopened = await rig.client.patch(
        f"/t/sites/{site}/intents/{intent}", json={"status": "pending"}, headers=owner
    )
    assert reopened.status_code == 200, reopened.text
    sealed = await rig.client.post(
        f"/t/sites/{site}/intents/{intent}/seal",
        json={"amount": "1250.00"},
        headers={**owner, "X-Request-ID": "req-seal"},
    )
    assert sealed.status_code in (200, 201), sealed.text

    log = await _records(rig, f"/t/sites/{site}/audit", owner)
    by_action: dict[str, list[dict[str, Any]]] = {}
    for item in reversed(log["items"]):
        by_action.setdefault(item["action"], []).append(item)
    actor = f"person:{owner_id}"

    [role] = by_action["site.member.role_changed"]
    assert (role["before"], role["after"]) == ({"role": "viewer"}, {"role": "editor"})
    assert (role["request_id"], role["actor"], role["site_id"]) == (
        "req-role-change-1",
        actor,
        site,
    )
    assert role["details"]["person"] == member_id
    [gone] = by_action["site.member.removed"]
    assert (gone["before"], gone["after"], gone["request_id"]) == (
        {"role": "editor"},
        None,
        "req-remove-1",
    )
    added = by_action["site.member.added"]
    assert [a["after"] for a in added] == [{"role": "owner"}, {"role": "viewer"}]
    assert all(a["before"] is None and a["request_id"] for a in added)

    [created] = by_action["site.created"]
    assert created["before"] is None
    assert created["after"]["config"] == {"score": {"phone": 2}}
    assert created["after"]["currency"] == "TRY"
    [updated] = by_action["site.updated"]
    assert updated["before"] == {"currency": "TRY", "config": {"score": {"phone": 2}}}
    assert updated["after"] == {"currency": "EUR", "config": {"score": {"phone": 2, "wa": 1}}}
    assert updated["request_id"] == "req-site-1" and updated["actor"].startswith("admin:")

    statuses = by_action["intent.status_changed"]
    assert [(s["before"], s["after"]) for s in statuses] == [
        ({"status": "pending"}, {"status": "junk"}),
        ({"status": "junk"}, {"status": "pending"}),
    ]
    assert statuses[0]["request_id"] == "req-junk" and statuses[0]["details"]["intent"] == intent
    assert statuses[1]["request_id"]  # an id the edge made up: every request has one
    [seal] = by_action["intent.sealed"]
    assert seal["before"] == {"status": "pending"}
    assert seal["after"] == {"status": "confirmed", "amount": "1250.00", "currency": "EUR"}
    assert seal["request_id"] == "req-seal"

    assert all(report.ok for report in await verify(rig.db))


async def test_admins_verify_a_chain_over_http(rig: Rig) -> None:
    site = (await rig.site("Checked"))["id"]
    _, owner = await _member(rig, site, "owner@checked.example", "owner")
    whole = await _records(rig, "/admin/audit/verify", ADMIN, site_id=site)
    assert whole["ok"] is True and whole["first_break"] is None
    assert (whole["site_id"], whole["checked"], whole["head_seq"]) == (site, 2, 2)
    platform = await _records(rig, "/admin/audit/verify", ADMIN)
    assert platform["site_id"] is None and platform["ok"] is True and platform["checked"] >= 1

    async with rig.db.begin() as conn:
        await conn.execute(
            update(audit_events)
            .where(audit_events.c.chain == site, audit_events.c.seq == 1)
            .values(details={"name": "Forged"})
        )
    broken = await _records(rig, "/admin/audit/verify", ADMIN, site_id=site)
    assert broken["ok"] is False
    assert broken["first_break"] == {
        "seq": 1,
        "reason": "hash_mismatch",
        "detail": "the record's content does not match its hash",
    }
    assert (await rig.client.get("/admin/audit/verify", headers=owner)).status_code == 401
    unknown = await _records(rig, "/admin/audit/verify", ADMIN, site_id=site + 1000)
    assert unknown["ok"] is True and unknown["checked"] == 0  # no records: nothing to break
