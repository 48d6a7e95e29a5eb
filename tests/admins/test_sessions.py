"""Admin sessions over HTTP: list, revoke, revoke all, log out, the cookie in production and
development, the sliding expiry, disabled admins, and the guard on existing admin routes."""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

import httpx

from service.admins.accounts import disable_admin
from service.db.types import from_timestamp
from tests.admins.conftest import ADMIN_KEY, AdminRig, bearer

PRODUCTION_SECRET = "production-cookie-secret-0123456789abcdef"


def set_cookies(response: httpx.Response) -> dict[str, Any]:
    """Each Set-Cookie header parsed: name -> its morsel."""
    found: dict[str, Any] = {}
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            found[name] = morsel
        found[f"{next(iter(jar))}:raw"] = header
    return found


async def test_sessions_are_listed_and_revoked_one_by_one_or_all(rig: AdminRig) -> None:
    await rig.add("alice")
    await rig.add("bob")
    first = await rig.login("alice")
    rig.clock.advance(1)
    second = await rig.login("alice")
    bobs = await rig.login("bob")
    token, other = second["token"], first["token"]

    listed = await rig.client.get("/admin/sessions", headers=bearer(token))
    items = listed.json()["items"]
    assert [s["id"] for s in items] == [second["session"]["id"], first["session"]["id"]]
    assert [s["current"] for s in items] == [True, False]
    assert items[0]["expires_at"] == "2025-06-16T03:06:41+00:00"  # 12 hours after login

    # Bob's session is not Alice's to end, and an id that names nothing is a 404.
    for foreign in (bobs["session"]["id"], "A" * 16, "not-an-id"):
        refused = await rig.client.delete(f"/admin/sessions/{foreign}", headers=bearer(token))
        assert refused.status_code == 404, foreign
    assert (
        await rig.client.get("/admin/sessions", headers=bearer(bobs["token"]))
    ).status_code == 200

    ended = await rig.client.delete(
        f"/admin/sessions/{first['session']['id']}", headers=bearer(token)
    )
    assert ended.status_code == 200
    assert ended.json() == {"id": first["session"]["id"], "revoked": True}
    assert "set-cookie" not in ended.headers  # another session: the caller's cookie stays
    assert (await rig.client.get("/admin/jobs/status", headers=bearer(other))).status_code == 401
    assert (await rig.client.get("/admin/jobs/status", headers=bearer(token))).status_code == 200

    rig.clock.advance(1)
    await rig.login("alice")
    everything = await rig.client.delete("/admin/sessions", headers=bearer(token))
    assert everything.json() == {"revoked": 2}
    assert set_cookies(everything)["kervan_admin"]["max-age"] == "0"
    assert (await rig.client.get("/admin/sessions", headers=bearer(token))).status_code == 401
    # Bob's session lives on.
    assert (
        await rig.client.get("/admin/sessions", headers=bearer(bobs["token"]))
    ).status_code == 200

    revoked = await rig.audit("admin.session.revoked")
    assert [(r["actor"], r["details"]["reason"]) for r in revoked] == [
        ("alice", "revoked"),
        ("alice", "revoke_all"),
        ("alice", "revoke_all"),
    ]
    assert revoked[0]["details"]["session"] == first["session"]["id"]
    assert {r["subject"] for r in revoked} == {"admin:alice"}


async def test_revoking_the_current_session_clears_the_cookie(rig: AdminRig) -> None:
    await rig.add("alice")
    login = await rig.login("alice")
    ended = await rig.client.delete(
        f"/admin/sessions/{login['session']['id']}", headers=bearer(login["token"])
    )
    assert ended.status_code == 200
    assert set_cookies(ended)["kervan_admin"]["max-age"] == "0"


async def test_logout_ends_the_session_and_clears_the_cookie(rig: AdminRig) -> None:
    await rig.add("alice")
    login = await rig.login("alice")
    cookie = {"Cookie": f"kervan_admin={login['token']}"}
    assert (await rig.client.get("/admin/sessions", headers=cookie)).status_code == 200
    out = await rig.client.post("/admin/logout", headers=cookie)
    assert out.status_code == 200 and out.json() == {"revoked": True}
    cleared = set_cookies(out)["kervan_admin"]
    assert cleared["max-age"] == "0" and cleared["path"] == "/"
    assert (await rig.client.get("/admin/sessions", headers=cookie)).status_code == 401
    again = await rig.client.post("/admin/logout", headers=cookie)
    assert again.json() == {"revoked": False}
    assert (await rig.client.post("/admin/logout")).json() == {"revoked": False}
    [row] = await rig.audit("admin.session.revoked")
    assert row["details"] == {"session": login["session"]["id"], "reason": "logout"}


async def test_the_development_cookie(rig: AdminRig) -> None:
    await rig.add("alice")
    code = await rig.request_code("alice")
    answer = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": code})
    cookies = set_cookies(answer)
    assert set(cookies) == {"kervan_admin", "kervan_admin:raw"}
    morsel = cookies["kervan_admin"]
    assert morsel.value == answer.json()["token"]
    assert morsel["httponly"] is True and morsel["samesite"] == "strict"
    assert morsel["path"] == "/" and not morsel["secure"] and not morsel["domain"]
    assert morsel["max-age"] == str(7 * 86_400)
    # The jar sends it back like a browser would, over plain http in development.
    assert (await rig.client.get("/admin/sessions")).status_code == 200


async def test_the_production_cookie_is_a_secure_host_cookie(
    make_rig: Callable[..., Any],
) -> None:
    async with make_rig(env="production", cookie_secret=PRODUCTION_SECRET) as rig:
        await rig.add("alice")
        code = await rig.request_code("alice")
        answer = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": code})
        cookies = set_cookies(answer)
        assert set(cookies) == {"__Host-kervan_admin", "__Host-kervan_admin:raw"}
        morsel = cookies["__Host-kervan_admin"]
        assert morsel["secure"] is True and morsel["httponly"] is True
        assert morsel["samesite"] == "strict" and morsel["path"] == "/"
        assert not morsel["domain"]
        token = answer.json()["token"]
        rig.client.cookies.clear()
        host = {"Cookie": f"__Host-kervan_admin={token}"}
        assert (await rig.client.get("/admin/sessions", headers=host)).status_code == 200
        # The development name is no credential in production (a subdomain could plant it).
        plain = {"Cookie": f"kervan_admin={token}"}
        assert (await rig.client.get("/admin/sessions", headers=plain)).status_code == 401
        out = await rig.client.post("/admin/logout", headers=host)
        cleared = set_cookies(out)
        assert cleared["__Host-kervan_admin"]["secure"] is True
        assert cleared["__Host-kervan_admin"]["max-age"] == "0"


async def test_the_session_slides_and_is_written_at_most_once_a_minute(rig: AdminRig) -> None:
    await rig.add("alice")
    login = await rig.login("alice")
    auth = bearer(login["token"])

    async def seen() -> str:
        answer = await rig.client.get("/admin/sessions", headers=auth)
        assert answer.status_code == 200
        [item] = answer.json()["items"]
        return str(item["last_seen_at"])

    assert await seen() == "2025-06-15T15:06:40+00:00"
    rig.clock.advance(59)
    assert await seen() == "2025-06-15T15:06:40+00:00"  # within the minute: nothing written
    assert await rig.audit("admin.session.refreshed") == []
    rig.clock.advance(1)
    assert await seen() == "2025-06-15T15:07:40+00:00"
    assert await seen() == "2025-06-15T15:07:40+00:00"
    [refreshed] = await rig.audit("admin.session.refreshed")
    assert refreshed["actor"] == "alice"
    assert refreshed["details"]["session"] == login["session"]["id"]

    # Idle just short of 12 hours after the last write: still alive, and slid again.
    rig.clock.advance(12 * 3600 - 1)
    assert await seen() == "2025-06-16T03:07:39+00:00"
    rig.clock.advance(12 * 3600)
    assert (await rig.client.get("/admin/sessions", headers=auth)).status_code == 401


async def test_an_active_session_still_ends_at_its_maximum_age(
    make_rig: Callable[..., Any],
) -> None:
    async with make_rig(
        admin_session_ttl_seconds=3600, admin_session_max_age_seconds=3 * 3600
    ) as rig:
        await rig.add("alice")
        auth = bearer((await rig.login("alice"))["token"])
        for _ in range(5):
            rig.clock.advance(1800)
            assert (await rig.client.get("/admin/sessions", headers=auth)).status_code == 200
        rig.clock.advance(1800)
        assert (await rig.client.get("/admin/sessions", headers=auth)).status_code == 401


async def test_a_disabled_admins_sessions_stop_at_once(rig: AdminRig) -> None:
    await rig.add("alice")
    login = await rig.login("alice")
    auth = bearer(login["token"])
    assert (await rig.client.get("/admin/sessions", headers=auth)).status_code == 200
    await disable_admin(rig.runtime.db, "alice", now=from_timestamp(rig.clock.now()), actor="t")
    assert (await rig.client.get("/admin/sessions", headers=auth)).status_code == 401
    [row] = await rig.audit("admin.session.revoked")
    assert row["actor"] == "system" and row["details"]["reason"] == "admin_disabled"
    # And no new code reaches a disabled admin.
    assert (await rig.client.post("/admin/otp/request", json={"admin": "alice"})).status_code == 202
    assert await rig.telegram_jobs() == []


async def test_the_guard_takes_a_session_or_the_api_key(rig: AdminRig) -> None:
    await rig.add("alice")
    token = (await rig.login("alice"))["token"]
    for headers in (
        bearer(token),
        {"Cookie": f"kervan_admin={token}"},
        bearer(ADMIN_KEY),
        {"X-API-Key": ADMIN_KEY},
    ):
        answer = await rig.client.get("/admin/jobs/status", headers=headers)
        assert answer.status_code == 200, (headers, answer.text)
    for headers in (
        {},
        bearer(token[:-1] + ("A" if token[-1] != "A" else "B")),
        {"Cookie": "kervan_admin=" + "x" * 43},
        {"X-API-Key": token},  # a session token is no API key
        # An explicit wrong header is not rescued by a good cookie.
        {**bearer("wrong"), "Cookie": f"kervan_admin={token}"},
    ):
        answer = await rig.client.get("/admin/jobs/status", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["www-authenticate"].startswith("Bearer")

    # The API key has no account, so no sessions; a session acts as its admin.
    machine = await rig.client.get("/admin/sessions", headers=bearer(ADMIN_KEY))
    assert machine.json() == {"items": []}
    lockouts = rig.runtime.ratelimiter
    assert lockouts is not None
    for _ in range(5):
        await lockouts.lockouts.failure("otp", "admin:mallory")
    lifted = await rig.client.post(
        "/admin/lockouts/lift", json={"rule": "otp", "key": "admin:mallory"}, headers=bearer(token)
    )
    assert lifted.status_code == 200 and lifted.json()["lifted"] is True
    [row] = await rig.audit("lockout.unlocked")
    assert row["actor"] == "alice"


async def test_without_an_api_key_sessions_still_open_admin_routes(
    make_rig: Callable[..., Any],
) -> None:
    async with make_rig(admin_api_key=None) as rig:
        await rig.add("alice")
        token = (await rig.login("alice"))["token"]
        assert (
            await rig.client.get("/admin/jobs/status", headers=bearer(token))
        ).status_code == 200
        keyed = await rig.client.get("/admin/jobs/status", headers={"X-API-Key": "anything"})
        assert keyed.status_code == 403 and keyed.json()["error"]["code"] == "admin_disabled"
        assert (await rig.client.get("/admin/jobs/status")).status_code == 401
