"""The kind-generic building blocks over the memory and the real Redis backends: one-time codes
(single use under concurrency) and sessions (index, expiry, refresh racing a revocation)."""

from __future__ import annotations

import asyncio

import pytest

from core.clock import ManualClock
from core.i18n import SUPPORTED_LOCALES
from service.admins.otp import OtpCodes, OtpOutcome, derive_otp_key, otp_text
from service.admins.sessions import SessionStore, token_digest
from service.backends import Backends
from service.backends.keys import AUTH_SESSION


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_750_000_000.0)


def codes(backends: Backends, clock: ManualClock, kind: str = "admin") -> OtpCodes:
    return OtpCodes(backends.kv, clock, kind=kind, ttl=300, key=derive_otp_key("k" * 40))


def store(backends: Backends, clock: ManualClock, kind: str = "admin") -> SessionStore:
    return SessionStore(
        backends, clock, kind=kind, idle_ttl=3600, max_age=86_400, refresh_interval=60
    )


async def test_a_code_is_used_once_even_by_concurrent_verifies(
    backends: Backends, clock: ManualClock
) -> None:
    otp = codes(backends, clock)
    code = await otp.issue("alice")
    outcomes = await asyncio.gather(*(otp.verify("alice", code) for _ in range(8)))
    assert outcomes.count(OtpOutcome.OK) == 1
    assert set(outcomes) == {OtpOutcome.OK, OtpOutcome.MISSING}


async def test_codes_belong_to_their_kind_and_name_and_expire(
    backends: Backends, clock: ManualClock
) -> None:
    admins, people = codes(backends, clock, "admin"), codes(backends, clock, "person")
    code = await admins.issue("alice")
    assert await people.verify("alice", code) is OtpOutcome.MISSING
    assert await admins.verify("bob", code) is OtpOutcome.MISSING
    wrong = "000000" if code != "000000" else "111111"
    assert await admins.verify("alice", wrong) is OtpOutcome.WRONG
    clock.advance(300)
    assert await admins.verify("alice", code) is OtpOutcome.EXPIRED
    assert await admins.verify("alice", code) is OtpOutcome.MISSING  # the expired one went


async def test_a_code_under_another_server_key_is_wrong(
    backends: Backends, clock: ManualClock
) -> None:
    code = await codes(backends, clock).issue("alice")
    other = OtpCodes(backends.kv, clock, kind="admin", ttl=300, key=derive_otp_key("x" * 40))
    assert await other.verify("alice", code) is OtpOutcome.WRONG


def test_the_message_in_every_language_carries_the_code_and_its_lifetime() -> None:
    for language in SUPPORTED_LOCALES:
        text = otp_text(code="042917", language=language, ttl_seconds=300)
        assert "042917" in text and "5" in text
    assert "dakika" in otp_text(code="1", language="tr", ttl_seconds=120)
    assert "Minuten" in otp_text(code="1", language="de", ttl_seconds=120)
    assert "2 minutes" in otp_text(code="1", language="en", ttl_seconds=120)


async def test_sessions_of_a_principal_are_listed_and_revoked(
    backends: Backends, clock: ManualClock
) -> None:
    sessions = store(backends, clock)
    first = await sessions.create(1, "alice", ip="192.0.2.1", user_agent="a" * 1000)
    clock.advance(1)
    second = await sessions.create(1, "alice", ip="192.0.2.2", user_agent="ua")
    other = await sessions.create(2, "bob", ip="192.0.2.3", user_agent="ua")
    assert len(first.session.user_agent) == 256
    listed = await sessions.sessions(1)
    assert [s.id for s in listed] == [second.session.id, first.session.id]
    assert await sessions.revoke(2, first.session.id) is None  # not bob's
    ended = await sessions.revoke(1, first.session.id)
    assert ended is not None and ended.ip == "192.0.2.1"
    assert await sessions.lookup(first.token) is None
    assert [s.id for s in await sessions.revoke_all(1)] == [second.session.id]
    assert await sessions.lookup(second.token) is None
    assert await sessions.sessions(1) == []
    found = await sessions.lookup(other.token)
    assert found is not None and found.session.name == "bob"


async def test_tokens_that_cannot_be_sessions_are_not_looked_up(
    backends: Backends, clock: ManualClock
) -> None:
    sessions = store(backends, clock)
    for token in ("", "short", "x" * 44, "!" * 43, "a b" + "c" * 40):
        assert await sessions.lookup(token) is None


async def test_expired_sessions_leave_the_index(backends: Backends, clock: ManualClock) -> None:
    sessions = store(backends, clock)
    made = await sessions.create(1, "alice", ip="192.0.2.1", user_agent="ua")
    clock.advance(3600)
    assert await sessions.sessions(1) == []
    assert await sessions.lookup(made.token) is None
    assert await backends.hashes.get_all(f"{AUTH_SESSION}:admin:{token_digest(made.token)}") == {}


async def test_concurrent_requests_write_one_refresh(
    backends: Backends, clock: ManualClock
) -> None:
    sessions = store(backends, clock)
    made = await sessions.create(1, "alice", ip="192.0.2.1", user_agent="ua")
    clock.advance(61)
    found = await asyncio.gather(*(sessions.lookup(made.token) for _ in range(10)))
    assert all(f is not None for f in found)
    assert sum(f.refreshed for f in found if f is not None) == 1


async def test_a_refresh_that_races_a_revocation_does_not_revive_the_session(
    backends: Backends, clock: ManualClock
) -> None:
    sessions = store(backends, clock)
    made = await sessions.create(1, "alice", ip="192.0.2.1", user_agent="ua")
    key = f"{AUTH_SESSION}:admin:{token_digest(made.token)}"
    await sessions.revoke(1, made.session.id)
    # What a request that read the session just before the revocation then writes:
    await backends.hashes.set(key, {"seen": b"1750000061.0"}, ttl=3600)
    assert await sessions.lookup(made.token) is None
    assert await backends.hashes.get_all(key) == {}
