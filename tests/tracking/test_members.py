# ruff: noqa: F811  (fixtures imported from tests/tracking/people_rig.py are redefined as parameters)
"""Sites and their members: platform admins manage sites, owners manage people, a site always
keeps an owner, viewers read and editors change, a site is seen only by its members; the
``kervan site`` and ``kervan person`` commands."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from service import cli
from service.db import Database
from service.db.tables.tracking import site_members, sites
from service.tracking.access import Actor, scope_for
from service.tracking.members import change_role, remove_member
from service.tracking.scope import ALL_SITES
from tests.tracking.people_rig import ADMIN, Rig, bearer, make_rig, rig, stack  # noqa: F401


async def test_admins_add_list_read_and_change_sites(rig: Rig) -> None:
    created = await rig.site(
        "Örnek Mağaza",
        domains=["Shop.Example", "www.shop.example", "localhost:8080"],
        currency="try",
        config={"monthly_events": 5000},
    )
    assert created["domains"] == ["shop.example", "www.shop.example", "localhost:8080"]
    assert created["currency"] == "TRY" and created["public_key"].startswith("st_")
    assert created["config"] == {"monthly_events": 5000} and created["calls_token_set"] is False
    second = await rig.site("Second")

    listed = await rig.client.get("/admin/sites", headers=ADMIN)
    assert [s["id"] for s in listed.json()["items"]] == [created["id"], second["id"]]
    assert listed.json()["next_after"] is None
    page = await rig.client.get("/admin/sites?limit=1", headers=ADMIN)
    assert page.json()["next_after"] == created["id"]
    rest = await rig.client.get(f"/admin/sites?after={created['id']}", headers=ADMIN)
    assert [s["id"] for s in rest.json()["items"]] == [second["id"]]

    one = await rig.client.get(f"/admin/sites/{created['id']}", headers=ADMIN)
    assert one.json() == created

    patched = await rig.client.patch(
        f"/admin/sites/{created['id']}",
        json={
            "name": "Yeni Ad",
            "time_zone": "Europe/Berlin",
            "config": {"monthly_events": None, "score": {"phone": 3}},
        },
        headers=ADMIN,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Yeni Ad" and patched.json()["time_zone"] == "Europe/Berlin"
    assert patched.json()["config"] == {"score": {"phone": 3}}  # a merge patch: null removes
    merged = await rig.client.patch(
        f"/admin/sites/{created['id']}", json={"config": {"score": {"wa": 1}}}, headers=ADMIN
    )
    assert merged.json()["config"] == {"score": {"phone": 3, "wa": 1}}
    [updated, _] = await rig.audit("site.updated")
    assert updated["details"]["changed"] == ["config", "name", "time_zone"]

    for bad, rule in (
        ({"time_zone": "Mars/Olympus"}, "IANA time zone"),
        ({"config": {"calls_token": "x"}}, "kept by kervan"),
        ({"domains": ["https://x.example"]}, "pattern"),
        ({"name": "  "}, "printable"),
    ):
        refused = await rig.client.patch(f"/admin/sites/{created['id']}", json=bad, headers=ADMIN)
        assert refused.status_code == 422 and rule in refused.text, refused.text
    assert (await rig.client.get("/admin/sites/999999", headers=ADMIN)).status_code == 404
    missing = await rig.client.patch("/admin/sites/999999", json={"name": "x"}, headers=ADMIN)
    assert missing.status_code == 404
    # People are no admins.
    token = await rig.signed_in(created["id"], "owner@example.com", "owner")
    assert (await rig.client.get("/admin/sites", headers=token)).status_code == 401
    assert (await rig.client.post("/admin/sites", json={}, headers=token)).status_code == 401


async def test_owners_invite_change_and_remove_members(rig: Rig) -> None:
    site = await rig.site("Shop")
    sid = site["id"]
    owner = await rig.signed_in(sid, "owner@example.com", "owner")

    invited = await rig.client.post(
        f"/t/sites/{sid}/members",
        json={"email": "New.Editor@Example.com", "role": "editor", "name": "Ed", "language": "de"},
        headers=owner,
    )
    assert invited.status_code == 201, invited.text
    editor = invited.json()
    assert editor["new_person"] is True and editor["notified"] is False  # e-mail is off here
    assert editor["member"]["email"] == "new.editor@example.com"
    assert editor["member"]["role"] == "editor" and editor["member"]["language"] == "de"
    again = await rig.client.post(
        f"/t/sites/{sid}/members",
        json={"email": "new.editor@example.com", "role": "viewer"},
        headers=owner,
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_member"

    listed = await rig.client.get(f"/t/sites/{sid}/members", headers=owner)
    assert [(m["email"], m["role"]) for m in listed.json()["items"]] == [
        ("owner@example.com", "owner"),
        ("new.editor@example.com", "editor"),
    ]
    editor_id = editor["member"]["person_id"]
    promoted = await rig.client.patch(
        f"/t/sites/{sid}/members/{editor_id}", json={"role": "viewer"}, headers=owner
    )
    assert promoted.status_code == 200 and promoted.json()["role"] == "viewer"
    removed = await rig.client.delete(f"/t/sites/{sid}/members/{editor_id}", headers=owner)
    assert removed.json() == {"person_id": editor_id, "removed": True}
    gone = await rig.client.delete(f"/t/sites/{sid}/members/{editor_id}", headers=owner)
    assert gone.status_code == 404
    actions = [
        (row["action"], row["details"].get("role") or row["details"].get("to"))
        for action in ("site.member.added", "site.member.role_changed", "site.member.removed")
        for row in await rig.audit(action)
    ]
    assert ("site.member.role_changed", "viewer") in actions
    assert ("site.member.removed", "viewer") in actions


async def test_a_site_always_keeps_an_owner(rig: Rig) -> None:
    site = await rig.site("Shop")
    sid = site["id"]
    owner = await rig.signed_in(sid, "owner@example.com", "owner")
    me = (await rig.client.get("/t/me", headers=owner)).json()
    owner_id = int(me["id"])

    demote = await rig.client.patch(
        f"/t/sites/{sid}/members/{owner_id}", json={"role": "editor"}, headers=owner
    )
    assert demote.status_code == 409 and demote.json()["error"]["code"] == "last_owner"
    leave = await rig.client.delete(f"/t/sites/{sid}/members/{owner_id}", headers=ADMIN)
    assert leave.status_code == 409 and leave.json()["error"]["code"] == "last_owner"

    second = await rig.member(sid, "second@example.com", "owner")
    second_id = second["member"]["person_id"]
    # Two owners: either may go, but not both.
    assert (
        await rig.client.patch(
            f"/t/sites/{sid}/members/{owner_id}", json={"role": "viewer"}, headers=owner
        )
    ).status_code == 200
    # The demoted owner is a viewer now: no more managing.
    refused = await rig.client.delete(f"/t/sites/{sid}/members/{second_id}", headers=owner)
    assert refused.status_code == 403
    last = await rig.client.delete(f"/t/sites/{sid}/members/{second_id}", headers=ADMIN)
    assert last.status_code == 409


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(rig: Rig) -> None:
    site = await rig.site("Shop")
    sid = site["id"]
    first = (await rig.member(sid, "a@example.com", "owner"))["member"]["person_id"]
    second = (await rig.member(sid, "b@example.com", "owner"))["member"]["person_id"]

    async def demote(person_id: int) -> str:
        try:
            async with rig.db.begin() as conn:
                _site, scope = await scope_for(conn, Actor("admin", "t"), sid)
                await change_role(conn, scope, person_id, "viewer", now=rig.now())
        except Exception as exc:  # the serialised loser: last_owner (or a lock timeout)
            return type(exc).__name__
        return "ok"

    outcomes = await asyncio.gather(demote(first), demote(second))
    assert sorted(outcomes).count("ok") == 1, outcomes
    async with rig.db.connect() as conn:
        roles = (
            await conn.execute(select(site_members.c.role).where(site_members.c.site_id == sid))
        ).scalars()
        assert sorted(roles) == ["owner", "viewer"]


async def test_roles_decide_what_a_member_may_do(rig: Rig) -> None:
    site = await rig.site("Shop")
    sid = site["id"]
    await rig.member(sid, "owner@example.com", "owner")
    viewer = await rig.signed_in(sid, "viewer@example.com", "viewer")
    editor = await rig.signed_in(sid, "editor@example.com", "editor")
    intent = await rig.intent(sid)
    body = {"email": "x@example.com", "role": "viewer"}

    # Both read the site and its members.
    for who in (viewer, editor):
        seen = await rig.client.get(f"/t/sites/{sid}", headers=who)
        assert seen.status_code == 200 and seen.json()["id"] == sid
        assert (await rig.client.get(f"/t/sites/{sid}/members", headers=who)).status_code == 200
    assert (await rig.client.get(f"/t/sites/{sid}", headers=viewer)).json()["role"] == "viewer"
    # Neither manages people or the calls token.
    for who in (viewer, editor):
        assert (
            await rig.client.post(f"/t/sites/{sid}/members", json=body, headers=who)
        ).status_code == 403
        assert (
            await rig.client.post(f"/t/sites/{sid}/calls-token", headers=who)
        ).status_code == 403
    # The editor changes statuses, the viewer does not.
    path = f"/t/sites/{sid}/intents/{intent}"
    assert (await rig.client.post(f"{path}/junk", headers=viewer)).status_code == 403
    assert (await rig.client.post(f"{path}/junk", headers=editor)).status_code == 200


async def test_a_site_is_seen_only_by_its_members(rig: Rig) -> None:
    mine = await rig.site("Mine")
    theirs = await rig.site("Theirs")
    member = await rig.signed_in(mine["id"], "me@example.com", "owner")
    assert (await rig.client.get(f"/t/sites/{mine['id']}", headers=member)).status_code == 200
    for path in (
        f"/t/sites/{theirs['id']}",
        f"/t/sites/{theirs['id']}/members",
        "/t/sites/999999",
        "/t/sites/0",
        "/t/sites/abc",
    ):
        answer = await rig.client.get(path, headers=member)
        assert answer.status_code == 404, (path, answer.text)
        assert "Theirs" not in answer.text
    assert (await rig.client.get(f"/t/sites/{mine['id']}")).status_code == 401
    sites_seen = (await rig.client.get("/t/me", headers=member)).json()["sites"]
    assert [s["id"] for s in sites_seen] == [mine["id"]]


async def test_removing_a_member_in_a_transaction_that_fails_changes_nothing(rig: Rig) -> None:
    site = await rig.site("Shop")
    sid = site["id"]
    await rig.member(sid, "a@example.com", "owner")
    viewer = (await rig.member(sid, "b@example.com", "viewer"))["member"]["person_id"]
    with pytest.raises(RuntimeError):
        async with rig.db.begin() as conn:
            _site, scope = await scope_for(conn, Actor("admin", "t"), sid)
            await remove_member(conn, scope, viewer, now=rig.now())
            raise RuntimeError("the caller's transaction fails after the change")
    listed = await rig.client.get(f"/t/sites/{sid}/members", headers=ADMIN)
    assert len(listed.json()["items"]) == 2


async def test_an_invitation_is_mailed_in_its_transaction(make_rig: Any) -> None:
    async with make_rig(
        tracking_smtp_host="127.0.0.1", tracking_smtp_port=2525, tracking_smtp_from="k@kervan.test"
    ) as rig:
        site = await rig.site("Mağaza")
        answer = await rig.client.post(
            f"/t/sites/{site['id']}/members",
            json={"email": "yeni@example.com", "role": "viewer"},
            headers=ADMIN,
        )
        assert answer.json()["notified"] is True
        [mail] = await rig.jobs("mail")
        assert mail["to"] == "yeni@example.com" and "Mağaza" in mail["subject"]
        assert "izleyici" in mail["text"]  # the new person's language: the default, Turkish


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> str:
    monkeypatch.chdir(str(tmp_path))  # no stray .env
    monkeypatch.setenv("KERVAN_DATABASE_URL", database_url)
    return database_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_site_and_person_commands(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "site", "list")[1].startswith("no sites yet")
    code, out, _ = run(capsys, "person", "add", "Ayse@Example.com", "--name", "Ayşe")
    assert code == 0 and out.startswith("added person ayse@example.com (id ")
    code, _, err = run(capsys, "person", "add", "ayse@example.com")
    assert code == 1 and "exists" in err
    code, _, err = run(capsys, "person", "add", "not-an-address")
    assert code == 2 and err == "kervan person add: not an e-mail address\n"

    code, out, _ = run(
        capsys,
        "site",
        "add",
        "Örnek",
        "--domain",
        "ornek.example",
        "--domain",
        "www.ornek.example",
        "--currency",
        "try",
        "--owner",
        "ayse@example.com",
    )
    assert code == 0 and "owner ayse@example.com" in out, out
    add_x = ("site", "add", "X", "--domain", "x.example", "--currency", "EUR")
    code, _, err = run(capsys, *add_x, "--time-zone", "Nowhere")
    assert code == 2 and "IANA time zone" in err
    code, out, _ = run(capsys, "site", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["ID", "NAME", "KEY"]
    assert len(lines) == 2 and "ornek.example,www.ornek.example" in lines[1]

    async def owners() -> list[tuple[int, str]]:
        db = Database(cli_env)
        try:
            async with db.connect() as conn:
                query = select(site_members.c.person_id, site_members.c.role).execution_options(
                    **ALL_SITES
                )
                rows = (await conn.execute(query)).all()
                count = len((await conn.execute(select(sites.c.id))).all())
                assert count == 1
                return [(int(r.person_id), r.role) for r in rows]
        finally:
            await db.dispose()

    assert [role for _, role in asyncio.run(owners())] == ["owner"]
