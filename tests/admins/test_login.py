"""OTP login over HTTP: the code travels only in the queued Telegram message, verifies once,
expires, locks out after repeated failures, and every step is audited."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import pytest

from service.admins.accounts import disable_admin
from service.admins.texts import INVALID_CODE
from service.backends.keys import AUTH_OTP, AUTH_SESSION
from service.db.types import from_timestamp
from tests.admins.conftest import AdminRig, bearer


async def test_request_queues_the_code_in_the_admins_language_and_never_logs_it(
    rig: AdminRig, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # Every kervan logger at DEBUG, the rest at the default level. (aiosqlite at DEBUG logs
    # every SQL parameter, the queued message among them: service/logging.py's concern.)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="kervan")
    await rig.add("ayse", chat_id="-1001234567890", language="tr")
    await rig.add("hans", chat_id="777", language="de")

    answer = await rig.client.post("/admin/otp/request", json={"admin": "hans"})
    assert answer.status_code == 202
    assert answer.json() == {"status": "accepted", "code_ttl_seconds": 300}
    assert answer.headers["cache-control"] == "no-store"
    [payload] = await rig.telegram_jobs()
    assert payload["chat_id"] == "777"
    assert payload["text"].startswith("🔐 Ihr kervan-Anmeldecode")
    code = payload["text"].split(": ", 1)[1][:6]
    assert code.isdigit() and len(code) == 6

    await rig.client.post("/admin/otp/request", json={"admin": "ayse"})
    [turkish] = await rig.telegram_jobs()
    assert turkish["chat_id"] == "-1001234567890"
    assert "giriş kodunuz" in turkish["text"] and "5 dakika" in turkish["text"]

    # Only a salted HMAC is stored: the digits are nowhere in the state backend's record.
    stored = await rig.runtime.backends.kv.get(f"{AUTH_OTP}:admin:hans")
    assert stored is not None and code.encode() not in stored

    rows = await rig.audit("admin.otp.requested")
    assert [(r["subject"], r["details"]["sent"]) for r in rows] == [
        ("admin:hans", True),
        ("admin:ayse", True),
    ]
    assert rows[0]["actor"] == "ip:127.0.0.1"
    assert code not in str(rows)

    verified = await rig.client.post("/admin/otp/verify", json={"admin": "hans", "code": code})
    assert verified.status_code == 200
    captured = capfd.readouterr()
    for text in (caplog.text, captured.out, captured.err):
        assert code not in text


async def test_unknown_and_disabled_admins_get_the_same_answer_and_nothing_is_sent(
    rig: AdminRig,
) -> None:
    await rig.add("alice")
    await rig.add("bob")
    await disable_admin(rig.runtime.db, "bob", now=from_timestamp(rig.clock.now()), actor="t")
    answers = [
        await rig.client.post("/admin/otp/request", json={"admin": name})
        for name in ("alice", "bob", "nobody")
    ]
    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1
    assert [p["chat_id"] for p in await rig.telegram_jobs()] == ["4242"]  # alice's only
    rows = await rig.audit("admin.otp.requested")
    assert [(r["subject"], r["details"]["sent"]) for r in rows] == [
        ("admin:alice", True),
        ("admin:bob", False),
        ("admin:nobody", False),
    ]
    # Both kinds of name are refused alike when they try a code.
    for name in ("bob", "nobody"):
        refused = await rig.client.post("/admin/otp/verify", json={"admin": name, "code": "123456"})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_code"


async def test_the_right_code_opens_a_session_once(rig: AdminRig) -> None:
    await rig.add("alice", language="de")
    code = await rig.request_code("alice")
    answer = await rig.client.post(
        "/admin/otp/verify",
        json={"admin": "alice", "code": code},
        headers={"User-Agent": "pytest-browser/1.0"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    token = body["token"]
    assert len(token) == 43 and body["token_type"] == "Bearer"
    assert body["admin"]["name"] == "alice" and body["admin"]["language"] == "de"
    session = body["session"]
    assert session["current"] is True and session["user_agent"] == "pytest-browser/1.0"
    assert session["ip"] == "127.0.0.1"
    assert answer.headers["cache-control"] == "no-store"

    # The state backend knows the session by the token's digest only.
    digest = hashlib.sha256(token.encode()).hexdigest()
    record = await rig.runtime.backends.hashes.get_all(f"{AUTH_SESSION}:admin:{digest}")
    assert record["sid"].decode() == session["id"]
    assert token.encode() not in b"".join(record.values())

    rig.client.cookies.clear()
    listed = await rig.client.get("/admin/sessions", headers=bearer(token))
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()["items"]] == [session["id"]]

    again = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": code})
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid_code"
    failed = await rig.audit("admin.otp.failed")
    assert [r["details"]["reason"] for r in failed] == ["no_code"]
    created = await rig.audit("admin.session.created")
    assert len(created) == 1
    assert created[0]["actor"] == "alice" and created[0]["subject"] == "admin:alice"
    assert created[0]["details"]["session"] == session["id"]


async def test_a_wrong_code_is_refused_and_the_right_one_still_works(rig: AdminRig) -> None:
    await rig.add("alice")
    code = await rig.request_code("alice")
    wrong = "000000" if code != "000000" else "111111"
    refused = await rig.client.post(
        "/admin/otp/verify",
        json={"admin": "alice", "code": wrong},
        headers={"Accept-Language": "tr"},
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == INVALID_CODE["tr"]
    assert (await rig.audit("admin.otp.failed"))[0]["details"]["reason"] == "wrong_code"
    ok = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": code})
    assert ok.status_code == 200


async def test_an_expired_code_is_refused(rig: AdminRig) -> None:
    await rig.add("alice")
    code = await rig.request_code("alice")
    rig.clock.advance(300)
    refused = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": code})
    assert refused.status_code == 401
    [failed] = await rig.audit("admin.otp.failed")
    assert failed["details"]["reason"] == "expired"
    assert failed["actor"] == "ip:127.0.0.1"


async def test_a_newer_code_replaces_the_older_one(rig: AdminRig) -> None:
    await rig.add("alice")
    first = await rig.request_code("alice")
    second = await rig.request_code("alice")
    if first != second:
        old = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": first})
        assert old.status_code == 401
    new = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": second})
    assert new.status_code == 200


async def test_repeated_failures_lock_the_name_out(make_rig: Callable[..., Any]) -> None:
    # The rig's generous OTP rate limits let the lockout rule (5 failures in 15 minutes) answer.
    async with make_rig() as rig:
        await rig.add("alice")
        code = await rig.request_code("alice")
        wrong = "000000" if code != "000000" else "111111"
        statuses = []
        for _ in range(5):
            answer = await rig.client.post(
                "/admin/otp/verify", json={"admin": "alice", "code": wrong}
            )
            statuses.append(answer.status_code)
        assert statuses == [401, 401, 401, 401, 429]
        assert answer.json()["error"]["code"] == "locked_out"
        assert int(answer.headers["Retry-After"]) == 15 * 60

        # Locked: the right code is refused too, and no new code is sent meanwhile.
        right = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": code})
        assert right.status_code == 429 and right.json()["error"]["code"] == "locked_out"
        asked = await rig.client.post("/admin/otp/request", json={"admin": "alice"})
        assert asked.status_code == 429 and "Retry-After" in asked.headers
        assert await rig.telegram_jobs() == []

        failed = await rig.audit("admin.otp.failed")
        assert [r["details"]["locked"] for r in failed] == [False] * 4 + [True]
        assert [r["details"]["failures"] for r in failed][:4] == [1, 2, 3, 4]
        [locked] = await rig.audit("lockout.locked")
        assert locked["subject"] == "lockout:otp:admin:alice"

        # The lock ends; the code that was outstanding when it began is gone for good.
        rig.clock.advance(15 * 60 + 1)
        stale = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": code})
        assert stale.status_code == 401
        fresh = await rig.request_code("alice")
        ok = await rig.client.post("/admin/otp/verify", json={"admin": "alice", "code": fresh})
        assert ok.status_code == 200


async def test_codes_are_rate_limited_per_address_and_per_name(
    make_rig: Callable[..., Any],
) -> None:
    async with make_rig(trusted_proxies="127.0.0.1", ratelimit_policies="") as rig:
        await rig.add("alice")

        def from_ip(ip: str) -> dict[str, str]:
            return {"X-Forwarded-For": ip}

        # One name from ever new addresses: the name's budget (burst 3) runs out.
        answers = [
            await rig.client.post(
                "/admin/otp/request", json={"admin": "alice"}, headers=from_ip(f"198.51.100.{i}")
            )
            for i in range(4)
        ]
        assert [a.status_code for a in answers] == [202, 202, 202, 429]
        refused = answers[-1]
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.json()["error"]["details"]["policies"] == ["otp.send"]
        assert int(refused.headers["Retry-After"]) > 0
        assert len(await rig.telegram_jobs()) == 3

        # One address asking for ever new names: the address's budget runs out.
        answers = [
            await rig.client.post(
                "/admin/otp/request", json={"admin": f"name-{i}"}, headers=from_ip("203.0.113.5")
            )
            for i in range(4)
        ]
        assert [a.status_code for a in answers] == [202, 202, 202, 429]


async def test_malformed_requests_are_refused_before_anything_happens(rig: AdminRig) -> None:
    await rig.add("alice")
    for path, body in (
        ("/admin/otp/request", {"admin": "Alice"}),
        ("/admin/otp/request", {"admin": "a"}),
        ("/admin/otp/request", {}),
        ("/admin/otp/verify", {"admin": "alice", "code": "12345"}),
        ("/admin/otp/verify", {"admin": "alice", "code": "12345a"}),
        ("/admin/otp/verify", {"code": "123456"}),
    ):
        answer = await rig.client.post(path, json=body)
        assert answer.status_code == 422, (path, body, answer.text)
        assert answer.json()["error"]["code"] == "validation_failed"
    assert await rig.audit("admin.otp.requested") == []
    assert await rig.audit("admin.otp.failed") == []
    assert await rig.telegram_jobs() == []
