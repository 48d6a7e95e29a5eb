# ruff: noqa: F811  (fixtures imported from tests/tracking/people_rig.py are redefined as parameters)
"""People sign in with the admins' OTP session layer, as the kind ``person``: codes over
Telegram or e-mail, one answer for unknown people, lockouts, sessions by cookie or Bearer that
only open person routes, logout, and the audit trail."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from service.backends.keys import AUTH_OTP
from service.db.tables.tracking import people
from service.tracking.people_auth import PERSON_COOKIE_DEVELOPMENT
from tests.tracking.people_rig import ADMIN, Rig, bearer, make_rig, rig, stack  # noqa: F401


async def test_a_person_signs_in_with_a_code_sent_to_telegram(rig: Rig) -> None:
    person = await rig.person("Ayse@Example.com", chat_id="-100200300", language="tr")
    site = await rig.site("Shop")
    await rig.member(site["id"], "ayse@example.com", "editor")

    # The address in any case is the same person; the message is in the person's language.
    answer = await rig.client.post("/t/auth/otp/request", json={"email": "AYSE@example.com"})
    assert answer.status_code == 202
    assert answer.json() == {"status": "accepted", "code_ttl_seconds": 300}
    [message] = await rig.jobs("telegram")
    assert message["chat_id"] == "-100200300"
    assert "giriş kodunuz" in message["text"] and "5 dakika" in message["text"]
    code = message["text"].split(": ")[1][:6]
    # Only a salted HMAC is stored, under the person kind.
    stored = await rig.runtime.backends.kv.get(f"{AUTH_OTP}:person:ayse@example.com")
    assert stored is not None and code.encode() not in stored

    verified = await rig.client.post(
        "/t/auth/otp/verify", json={"email": "ayse@example.com", "code": code}
    )
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["token_type"] == "Bearer" and body["person"]["id"] == person.id
    assert body["person"]["email"] == "ayse@example.com" and body["person"]["telegram"] is True
    cookie = verified.headers["set-cookie"]
    assert cookie.startswith(f"{PERSON_COOKIE_DEVELOPMENT}=") and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie and "Path=/" in cookie

    # The cookie (kept by the client's jar) and the Bearer token both open /t/me.
    by_cookie = await rig.client.get("/t/me")
    assert by_cookie.status_code == 200, by_cookie.text
    rig.client.cookies.clear()
    me = await rig.client.get("/t/me", headers=bearer(body["token"]))
    assert me.json() == by_cookie.json()
    assert me.json()["kind"] == "person" and me.json()["id"] == str(person.id)
    assert [(s["id"], s["role"]) for s in me.json()["sites"]] == [(site["id"], "editor")]

    # The code was used: a second verify finds none.
    again = await rig.client.post(
        "/t/auth/otp/verify", json={"email": "ayse@example.com", "code": code}
    )
    assert again.status_code == 401 and again.json()["error"]["code"] == "invalid_code"

    [requested] = await rig.audit("person.otp.requested")
    assert requested["subject"] == "person:ayse@example.com" and requested["details"]["sent"]
    assert requested["details"]["channel"] == "telegram"
    [created] = await rig.audit("person.session.created")
    assert created["actor"] == f"person:{person.id}"
    assert code not in str(await rig.audit("person.otp.requested"))


async def test_unknown_and_disabled_people_get_the_same_answer_and_nothing_is_sent(
    rig: Rig,
) -> None:
    await rig.person("alice@example.com")
    bob = await rig.person("bob@example.com")
    async with rig.db.begin() as conn:
        await conn.execute(
            update(people).where(people.c.id == bob.id).values(disabled_at=rig.now())
        )
    answers = [
        await rig.client.post("/t/auth/otp/request", json={"email": email})
        for email in ("alice@example.com", "bob@example.com", "nobody@example.com")
    ]
    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1
    assert len(await rig.jobs("telegram")) == 1  # alice's only
    sent = [r["details"]["sent"] for r in await rig.audit("person.otp.requested")]
    assert sent == [True, False, False]
    for email in ("bob@example.com", "nobody@example.com"):
        refused = await rig.client.post(
            "/t/auth/otp/verify", json={"email": email, "code": "123456"}
        )
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_code"


async def test_a_person_without_telegram_gets_the_code_by_email(make_rig: object) -> None:
    async with make_rig(  # type: ignore[operator]
        tracking_smtp_host="127.0.0.1", tracking_smtp_port=2525, tracking_smtp_from="k@kervan.test"
    ) as rig:
        await rig.person("hans@example.com", chat_id=None, language="de")
        code = await rig.request_code("hans@example.com", queue="mail")
        assert await rig.jobs("telegram") == []
        answer = await rig.client.post(
            "/t/auth/otp/verify", json={"email": "hans@example.com", "code": code}
        )
        assert answer.status_code == 200
        [requested] = await rig.audit("person.otp.requested")
        assert requested["details"]["channel"] == "email"


async def test_without_a_channel_nothing_is_issued(rig: Rig) -> None:
    # No chat, and e-mail is off in this app: the same 202, nothing queued or stored.
    await rig.person("nochannel@example.com", chat_id=None)
    answer = await rig.client.post("/t/auth/otp/request", json={"email": "nochannel@example.com"})
    assert answer.status_code == 202
    assert await rig.jobs("telegram") == [] and await rig.jobs("mail") == []
    assert await rig.runtime.backends.kv.get(f"{AUTH_OTP}:person:nochannel@example.com") is None


async def test_failures_lock_the_address_out(make_rig: object) -> None:
    async with make_rig(ratelimit_policies="") as rig:  # type: ignore[operator]
        await rig.person("carol@example.com")
        code = await rig.request_code("carol@example.com")
        for _ in range(5):
            wrong = await rig.client.post(
                "/t/auth/otp/verify", json={"email": "carol@example.com", "code": "000000"}
            )
        assert wrong.status_code == 429
        assert wrong.json()["error"]["code"] == "locked_out"
        assert int(wrong.headers["Retry-After"]) > 0
        # Locked: even the right code is refused now, and the outstanding code was discarded.
        right = await rig.client.post(
            "/t/auth/otp/verify", json={"email": "carol@example.com", "code": code}
        )
        assert right.status_code == 429
        failed = await rig.audit("person.otp.failed")
        assert [r["details"]["locked"] for r in failed] == [False] * 4 + [True]


async def test_sessions_are_of_their_kind(rig: Rig) -> None:
    await rig.person("dave@example.com")
    token = await rig.login("dave@example.com")
    # A person's token is no admin's.
    assert (await rig.client.get("/admin/sites", headers=bearer(token))).status_code == 401
    # Nor the reverse: an admin key is the admin kind (every site, no person).
    site = await rig.site("Everything")
    me = (await rig.client.get("/t/me", headers=ADMIN)).json()
    assert me["kind"] == "admin" and me["person"] is None
    assert [(s["id"], s["role"]) for s in me["sites"]] == [(site["id"], "admin")]
    # Nobody: 401 with the scheme.
    anonymous = await rig.client.get("/t/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await rig.client.get("/t/me", headers=bearer("x" * 43))
    assert wrong.status_code == 401


async def test_logout_ends_the_session_and_disabling_ends_every_session(rig: Rig) -> None:
    erin = await rig.person("erin@example.com")
    first = await rig.login("erin@example.com")
    second = await rig.login("erin@example.com")
    out = await rig.client.post("/t/auth/logout", headers=bearer(first))
    assert out.status_code == 200 and out.json() == {"revoked": True}
    assert f"{PERSON_COOKIE_DEVELOPMENT}=" in out.headers["set-cookie"]  # cleared
    assert (await rig.client.get("/t/me", headers=bearer(first))).status_code == 401
    assert (await rig.client.post("/t/auth/logout", headers=bearer(first))).json() == {
        "revoked": False
    }
    assert (await rig.client.get("/t/me", headers=bearer(second))).status_code == 200

    async with rig.db.begin() as conn:
        await conn.execute(
            update(people).where(people.c.id == erin.id).values(disabled_at=rig.now())
        )
    assert (await rig.client.get("/t/me", headers=bearer(second))).status_code == 401
    reasons = [r["details"]["reason"] for r in await rig.audit("person.session.revoked")]
    assert reasons == ["logout", "person_disabled"]


async def test_sessions_expire_on_the_clock(rig: Rig) -> None:
    await rig.person("frank@example.com")
    token = await rig.login("frank@example.com")
    ttl = rig.runtime.settings.admin_session_ttl_seconds
    rig.clock.advance(ttl - 1)
    assert (await rig.client.get("/t/me", headers=bearer(token))).status_code == 200
    rig.clock.advance(ttl + 1)
    assert (await rig.client.get("/t/me", headers=bearer(token))).status_code == 401


async def test_admins_add_people(rig: Rig) -> None:
    body = {"email": "Gul@Example.com", "name": "Gül", "language": "tr", "telegram_chat_id": "77"}
    added = await rig.client.post("/admin/people", json=body, headers=ADMIN)
    assert added.status_code == 201, added.text
    assert added.json()["email"] == "gul@example.com" and added.json()["telegram"] is True
    again = await rig.client.post("/admin/people", json=body, headers=ADMIN)
    assert again.status_code == 409
    refused = await rig.client.post("/admin/people", json=body)
    assert refused.status_code == 401
    blank = await rig.client.post(
        "/admin/people", json={"email": "h@example.com", "name": "   "}, headers=ADMIN
    )
    assert blank.status_code == 422 and "printable" in blank.text
    [created] = await rig.audit("person.created")
    assert created["actor"] == "admin:api-key"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address"},
        {"email": "a@b"},
        {"email": "<a@b.example>"},
        {"email": "a@b.example", "extra": 1},
    ],
)
async def test_bad_requests_are_refused_clearly(rig: Rig, body: dict[str, object]) -> None:
    answer = await rig.client.post("/t/auth/otp/request", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_failed"
