"""Proof that a caller speaks for a consent subject: an HMAC of the subject id kervan handed out.

Subject ids are not secrets (they appear in URLs, logs and the consent token), so knowing one
must not be enough to change that subject's consent. kervan gives the proof only to whoever it
minted an anonymous id for (``POST /consent``) or to the site's back end (admin key) for its own
user ids. The proof never expires: it is as long-lived as the anonymous-id cookie it travels in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from core.consent.token import derive_token_key

PROOF_LABEL = "kervan/consent-subject/v1"
# Cookie value: "<subject>.<proof>". Subjects may contain '.', proofs (base64url) never do.
COOKIE_SEPARATOR = "."


def derive_subject_key(root_secret: str) -> bytes:
    """Separate from the token key: a consent token (public via GET) must never prove a subject."""
    return derive_token_key(root_secret, PROOF_LABEL)


def subject_proof(subject: str, key: bytes) -> str:
    digest = hmac.new(key, subject.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def proves_subject(subject: str, proof: str, keys: Sequence[bytes]) -> bool:
    """True when ``proof`` was issued for ``subject`` under any of ``keys`` (rotation)."""
    presented = proof.encode("ascii", errors="replace")
    return any(hmac.compare_digest(subject_proof(subject, key).encode(), presented) for key in keys)


def subject_cookie(subject: str, key: bytes) -> str:
    return f"{subject}{COOKIE_SEPARATOR}{subject_proof(subject, key)}"


def subject_from_cookie(value: str, keys: Sequence[bytes]) -> str | None:
    """The subject a cookie value proves, or None when it is malformed or not ours."""
    subject, separator, proof = value.rpartition(COOKIE_SEPARATOR)
    if not separator or not subject or not proves_subject(subject, proof, keys):
        return None
    return subject
