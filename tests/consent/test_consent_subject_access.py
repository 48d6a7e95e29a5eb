"""Who may read or change a subject's consent: its proof (header or cookie), or the admin key."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.requests import Request

from core.consent.subject_proof import derive_subject_key, subject_cookie, subject_proof
from service.consent.policy import ConsentPolicy
from service.consent.subject_access import (
    SUBJECT_COOKIE,
    SUBJECT_COOKIE_MAX_AGE,
    authorize_subject,
    issue_cookie,
)
from service.errors import ApiError

from .helpers import BANNER, REGISTRY

KEY = derive_subject_key("subject-access-root-secret-0123456789")
OLD = derive_subject_key("subject-access-older-secret-0123456789")
POLICY = ConsentPolicy(
    registry=REGISTRY,
    banner=BANNER,
    token_keys=(b"t" * 32,),
    token_lifetime=3600,
    subject_keys=(KEY, OLD),
)
ADMIN_KEY = "subject-access-admin-key"


def request(headers: dict[str, str], *, admin_key: str | None = ADMIN_KEY) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(admin_api_key=admin_key)))
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw, "app": app})


def cookie(subject: str, key: bytes = KEY) -> dict[str, str]:
    return {"cookie": f"{SUBJECT_COOKIE}={subject_cookie(subject, key)}"}


async def refused(conn: Request, subject: str = "user-1", *, admin_may_read: bool = False) -> str:
    with pytest.raises(ApiError) as raised:
        await authorize_subject(conn, subject, POLICY, admin_may_read=admin_may_read)
    return f"{raised.value.status} {raised.value.code}"


@pytest.mark.parametrize("key", [KEY, OLD], ids=["current", "previous"])
async def test_a_header_proof_or_the_cookie_proves_the_subject(key: bytes) -> None:
    await authorize_subject(
        request({"X-Consent-Proof": subject_proof("user-1", key)}), "user-1", POLICY
    )
    await authorize_subject(request(cookie("user-1", key)), "user-1", POLICY)


async def test_a_proof_for_someone_else_is_refused_even_next_to_a_valid_cookie() -> None:
    headers = {"X-Consent-Proof": subject_proof("user-2", KEY), **cookie("user-1")}
    assert await refused(request(headers)) == "403 subject_proof_invalid"


async def test_a_cookie_of_another_subject_or_key_is_no_proof() -> None:
    assert await refused(request(cookie("user-2"))) == "401 subject_proof_required"
    forged = derive_subject_key("not-kervans-key-0123456789abcdef")
    assert await refused(request(cookie("user-1", forged))) == "401 subject_proof_required"


async def test_admin_credentials_only_read() -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    await authorize_subject(request(admin), "user-1", POLICY, admin_may_read=True)
    await authorize_subject(
        request({"X-API-Key": ADMIN_KEY}), "user-1", POLICY, admin_may_read=True
    )
    # Writes go through the audited admin route instead.
    assert await refused(request(admin)) == "401 subject_proof_required"


async def test_admin_reads_are_decided_by_require_admin() -> None:
    wrong = request({"X-API-Key": "nope"})
    assert await refused(wrong, admin_may_read=True) == "401 unauthorized"
    disabled = request({"X-API-Key": ADMIN_KEY}, admin_key=None)
    assert await refused(disabled, admin_may_read=True) == "403 admin_disabled"


def test_the_issued_cookie_proves_its_subject_for_400_days() -> None:
    issued = issue_cookie("a-123", POLICY, secure=True)
    assert issued.value == subject_cookie("a-123", KEY)
    assert (issued.name, issued.max_age, issued.path) == (
        SUBJECT_COOKIE,
        SUBJECT_COOKIE_MAX_AGE,
        "/consent",
    )
    assert issued.secure and issued.httponly and issued.samesite == "lax"
    assert not issue_cookie("a-123", POLICY, secure=False).secure
