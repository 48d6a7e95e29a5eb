"""Who may read or change a subject's consent over HTTP: the subject's proof or the admin key.

Subject ids are not secrets (user ids are guessable), so knowing one is not enough: the caller
presents the subject's proof, in the ``X-Consent-Proof`` header (a site's own front end, any
origin) or in the cookie ``POST /consent`` sets (kervan's banner, same site).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from starlette.requests import HTTPConnection

from core.consent.subject_proof import proves_subject, subject_cookie, subject_from_cookie
from service.auth import require_admin
from service.consent.policy import ConsentPolicy
from service.errors import ApiError

PROOF_HEADER = "x-consent-proof"
SUBJECT_COOKIE = "kervan_consent_subject"
# Browsers cap cookie lifetimes at 400 days; the banner re-mints only when the cookie is gone.
SUBJECT_COOKIE_MAX_AGE = 400 * 86_400
# The cookie only travels to the consent API, never to the rest of the site.
SUBJECT_COOKIE_PATH = "/consent"


@dataclass(frozen=True, slots=True)
class SubjectCookie:
    """The cookie that proves a minted subject; the route sets it with these attributes."""

    value: str
    secure: bool
    name: str = SUBJECT_COOKIE
    max_age: int = SUBJECT_COOKIE_MAX_AGE
    path: str = SUBJECT_COOKIE_PATH
    httponly: bool = True
    samesite: Literal["lax", "strict", "none"] = "lax"


def issue_cookie(subject: str, policy: ConsentPolicy, *, secure: bool) -> SubjectCookie:
    return SubjectCookie(subject_cookie(subject, policy.subject_keys[0]), secure=secure)


async def authorize_subject(
    conn: HTTPConnection, subject: str, policy: ConsentPolicy, *, admin_may_read: bool = False
) -> None:
    """Return when the caller proves ``subject``; raise the 401/403 error envelope otherwise.

    A wrong header proof is refused even next to a valid cookie, so a caller learns about its
    mistake instead of acting as someone else. Server-side readers (tagging, back ends) read
    with the admin key (``admin_may_read``); admins change consent through the audited
    ``/admin/consent`` route instead, so on writes admin credentials are no proof.
    """
    presented = conn.headers.get(PROOF_HEADER)
    if presented is not None:
        if proves_subject(subject, presented, policy.subject_keys):
            return
        raise ApiError(403, "subject_proof_invalid", "the consent proof is not for this subject")
    cookie = conn.cookies.get(SUBJECT_COOKIE)
    if cookie is not None and subject_from_cookie(cookie, policy.subject_keys) == subject:
        return
    if admin_may_read and ("authorization" in conn.headers or "x-api-key" in conn.headers):
        await require_admin(conn)
        return
    raise ApiError(
        401,
        "subject_proof_required",
        "consent of a subject needs its proof: the X-Consent-Proof header or the cookie "
        "issued by POST /consent",
    )
