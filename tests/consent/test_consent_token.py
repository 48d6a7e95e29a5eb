"""The signed consent token: round trip, per-purpose expiry, every tampering rejected."""

from __future__ import annotations

import base64
import json

import pytest

from core.consent.token import (
    InvalidConsentToken,
    derive_token_key,
    issue_token,
    verify_token,
)

from .helpers import REGISTRY, T0, at, granted_state

KEY = derive_token_key("cookie-secret-for-tests")
DAY = 86_400


def make_token(now: float = T0, lifetime: int = 365 * DAY) -> str:
    state = granted_state("analytics", "ads")
    return issue_token(state, REGISTRY.names, key=KEY, now=now, lifetime=lifetime)


def test_round_trip_carries_only_granted_purposes_with_their_expiry() -> None:
    token = make_token()
    assert token.startswith("c1.") and len(token) < 200
    claims = verify_token(token, keys=[KEY], now=T0 + 1, subject="anon-1")
    assert claims.subject == "anon-1"
    assert dict(claims.purposes) == {
        "analytics": int(at(2026, 7, 15)),
        "ads": int(at(2026, 4, 15)),
    }
    assert claims.allows("analytics", T0 + 1)
    assert not claims.allows("personalization", T0 + 1)


def test_per_purpose_expiry_inside_a_valid_token() -> None:
    claims = verify_token(make_token(), keys=[KEY], now=at(2026, 4, 15) + 1)
    assert not claims.allows("ads", at(2026, 4, 15))
    assert claims.allows("ads", at(2026, 4, 15) - 1)
    assert claims.allows("analytics", at(2026, 4, 15) + 1)


def test_token_lifetime_bounds_every_purpose() -> None:
    token = make_token(lifetime=DAY)
    claims = verify_token(token, keys=[KEY], now=T0 + DAY - 1)
    assert claims.allows("analytics", T0 + DAY - 1)
    assert not claims.allows("analytics", T0 + DAY)
    with pytest.raises(InvalidConsentToken) as info:
        verify_token(token, keys=[KEY], now=T0 + DAY)
    assert info.value.details["reason"] == "expired"


def test_denied_and_expired_purposes_are_not_carried() -> None:
    state = granted_state("ads", value="denied")
    token = issue_token(state, REGISTRY.names, key=KEY, now=T0, lifetime=DAY)
    assert dict(verify_token(token, keys=[KEY], now=T0).purposes) == {}
    expired_state = granted_state("ads")
    late = at(2026, 5, 1)
    token = issue_token(expired_state, REGISTRY.names, key=KEY, now=late, lifetime=DAY)
    assert dict(verify_token(token, keys=[KEY], now=late).purposes) == {}


def _forge_payload(token: str, change: dict[str, object]) -> str:
    prefix, body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(change)
    raw = json.dumps(payload, separators=(",", ":")).encode()
    forged = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return f"{prefix}.{forged}.{signature}"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: _forge_payload(t, {"p": {"analytics": 4_000_000_000, "ads": 4_000_000_000}}),
        lambda t: _forge_payload(t, {"x": 4_000_000_000}),
        lambda t: _forge_payload(t, {"s": "someone-else"}),
        lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"),
        lambda t: t.split(".")[0] + "." + t.split(".")[1] + ".",
    ],
    ids=["purposes", "expiry", "subject", "signature", "no-signature"],
)
def test_tampered_tokens_are_rejected(tamper: object) -> None:
    token = make_token()
    forged = tamper(token)  # type: ignore[operator]
    assert forged != token
    with pytest.raises(InvalidConsentToken) as info:
        verify_token(forged, keys=[KEY], now=T0 + 1)
    assert info.value.details["reason"] == "signature"


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "c1.a.b.c", "c2.abc.def", "c1.!!!.???", "c1." + "A" * 5000 + ".x"],
)
def test_malformed_tokens_are_rejected(token: str) -> None:
    with pytest.raises(InvalidConsentToken):
        verify_token(token, keys=[KEY], now=T0)


def test_wrong_key_subject_and_future_issue_are_rejected() -> None:
    token = make_token()
    with pytest.raises(InvalidConsentToken):
        verify_token(token, keys=[derive_token_key("another-secret")], now=T0 + 1)
    with pytest.raises(InvalidConsentToken) as info:
        verify_token(token, keys=[KEY], now=T0 + 1, subject="anon-2")
    assert info.value.details["reason"] == "subject"
    with pytest.raises(InvalidConsentToken) as info:
        verify_token(token, keys=[KEY], now=T0 - 3600)
    assert info.value.details["reason"] == "iat"


def test_key_rotation_accepts_old_and_new_keys() -> None:
    old_token = make_token()
    new_key = derive_token_key("rotated-secret")
    claims = verify_token(old_token, keys=[new_key, KEY], now=T0 + 1)
    assert claims.subject == "anon-1"


def test_signed_but_malformed_payload_is_rejected() -> None:
    import hashlib
    import hmac

    body = base64.urlsafe_b64encode(b'{"s":1,"i":"x","x":2,"p":[]}').rstrip(b"=").decode()
    signed = f"c1.{body}"
    signature = hmac.new(KEY, signed.encode(), hashlib.sha256).digest()
    token = f"{signed}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(InvalidConsentToken) as info:
        verify_token(token, keys=[KEY], now=T0)
    assert info.value.details["reason"] == "payload"
