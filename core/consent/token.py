"""The signed consent token: an edge or server-side tag manager checks consent without a lookup.

Format: ``c1.<payload>.<signature>``, both parts base64url without padding. The payload is
compact JSON ``{"s": subject, "i": issued_at, "x": token_expiry, "p": {purpose: expiry}}`` listing
only the purposes granted and unexpired when issued; a purpose absent from ``p`` is not allowed.
The signature is HMAC-SHA256 over ``c1.<payload>``. Times are whole epoch seconds; a purpose's
expiry is rounded down so the token never outlives the consent it carries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.consent.gate import has_consent
from core.consent.model import ConsentState
from core.errors import ValidationFailed

PREFIX = "c1"
MAX_TOKEN_LENGTH = 4096
# Tolerated clock difference between the issuer and the verifying edge.
CLOCK_SKEW_SECONDS = 300


class InvalidConsentToken(ValidationFailed):
    code = "invalid_consent_token"


@dataclass(frozen=True, slots=True)
class ConsentTokenClaims:
    subject: str
    issued_at: int
    expires_at: int
    purposes: Mapping[str, int]

    def allows(self, purpose: str, now: float) -> bool:
        purpose_expiry = self.purposes.get(purpose)
        if purpose_expiry is None:
            return False
        return now < min(purpose_expiry, self.expires_at)


def derive_token_key(root_secret: str, label: str = "kervan/consent-token/v1") -> bytes:
    """A key dedicated to consent tokens, derived from a broader secret (e.g. the cookie secret)."""
    return hmac.new(root_secret.encode(), label.encode(), hashlib.sha256).digest()


def issue_token(
    state: ConsentState, purposes: Sequence[str], *, key: bytes, now: float, lifetime: int
) -> str:
    if lifetime <= 0:
        raise ValueError("token lifetime must be positive")
    granted = {
        purpose: math.floor(state.purposes[purpose].expires_at)
        for purpose in sorted(purposes)
        if has_consent(state, purpose, now)
    }
    issued = math.floor(now)
    payload = {"s": state.subject, "i": issued, "x": issued + lifetime, "p": granted}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{PREFIX}.{body}"
    return f"{signed}.{_b64(_sign(key, signed))}"


def verify_token(
    token: str, *, keys: Sequence[bytes], now: float, subject: str | None = None
) -> ConsentTokenClaims:
    """Check the signature against any of ``keys`` (rotation), expiry and optionally the subject.

    Raises InvalidConsentToken with the reason; never returns claims that failed a check.
    """
    if not keys:
        raise ValueError("at least one verification key is required")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidConsentToken("consent token too long", details={"reason": "too_long"})
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise InvalidConsentToken("malformed consent token", details={"reason": "malformed"})
    signed = f"{parts[0]}.{parts[1]}"
    signature = _unb64(parts[2])
    if not any(hmac.compare_digest(_sign(key, signed), signature) for key in keys):
        raise InvalidConsentToken("bad consent token signature", details={"reason": "signature"})
    claims = _claims(_unb64(parts[1]))
    if claims.issued_at > now + CLOCK_SKEW_SECONDS:
        raise InvalidConsentToken("consent token issued in the future", details={"reason": "iat"})
    if now >= claims.expires_at:
        raise InvalidConsentToken("consent token expired", details={"reason": "expired"})
    if subject is not None and not hmac.compare_digest(subject, claims.subject):
        raise InvalidConsentToken("consent token subject mismatch", details={"reason": "subject"})
    return claims


def _claims(raw: bytes) -> ConsentTokenClaims:
    try:
        data: Any = json.loads(raw)
        purposes = data["p"]
        if not isinstance(purposes, dict):
            raise TypeError("p")
        return ConsentTokenClaims(
            subject=_str(data["s"]),
            issued_at=_int(data["i"]),
            expires_at=_int(data["x"]),
            purposes={_str(name): _int(expiry) for name, expiry in purposes.items()},
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidConsentToken(
            "malformed consent token payload", details={"reason": "payload"}
        ) from exc


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    return value


def _sign(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidConsentToken(
            "malformed consent token", details={"reason": "encoding"}
        ) from exc
