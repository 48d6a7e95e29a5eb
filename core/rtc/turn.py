"""Short-lived TURN credentials: the "TURN REST API" scheme coturn checks with ``use-auth-secret``.

kervan and the TURN servers share a secret and never talk to each other: the username carries
its own expiry, ``<expiry unix time>:<user id>``, and the credential is
``base64(HMAC-SHA1(secret, username))``. A TURN server recomputes the HMAC with each secret it
accepts and refuses a username whose expiry has passed, so a leaked credential stops working at
its expiry without any revocation list.

Secrets rotate without a flag day: every party holds a list of accepted secrets and the first one
signs. Add the new secret second everywhere (TURN servers first), then move it first in kervan,
and drop the old one once the longest TTL has passed; ``verify_credential`` applies exactly
this rule (coturn does with several ``static-auth-secret`` lines).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

#: Between the expiry and the user id (coturn's default ``rest-api-separator``).
SEPARATOR = ":"
#: What a user id may hold: the person ids of live support (``cu_...``, ``ad_...``) and more,
#: but no separator and nothing a TURN server's logs or a STUN USERNAME would choke on.
USER_ID_PATTERN = r"^[A-Za-z0-9_.@-]{1,128}$"
_USER_ID = re.compile(USER_ID_PATTERN)
_USERNAME = re.compile(r"^([0-9]{1,12}):(.+)$")


@dataclass(frozen=True, slots=True)
class TurnCredential:
    """What a WebRTC client passes as ``username`` and ``credential`` of a TURN ICE server."""

    username: str
    credential: str
    #: Unix seconds: the last second the credential is accepted in.
    expires_at: int


@dataclass(frozen=True, slots=True)
class Accepted:
    user_id: str
    expires_at: int
    #: Which of the accepted secrets signed it (0: the current one).
    secret_index: int


class Refused(StrEnum):
    MALFORMED = "malformed"
    EXPIRED = "expired"
    UNKNOWN_SECRET = "unknown_secret"  # noqa: S105 - a reason, not a password


def _signature(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def mint_credential(secret: str, user_id: str, *, now: float, ttl: int) -> TurnCredential:
    """A credential for ``user_id`` signed by ``secret``, valid ``ttl`` seconds from ``now``."""
    if not secret:
        raise ValueError("the TURN secret is empty")
    if not _USER_ID.match(user_id):
        raise ValueError(f"user id {user_id!r} does not match {USER_ID_PATTERN}")
    if ttl <= 0:
        raise ValueError("the TTL must be positive")
    expires_at = math.floor(now) + ttl
    username = f"{expires_at}{SEPARATOR}{user_id}"
    return TurnCredential(username, _signature(secret, username), expires_at)


def verify_credential(
    username: str, credential: str, secrets: Sequence[str], *, now: float
) -> Accepted | Refused:
    """What a TURN server with ``secrets`` concludes: accepted (by which secret) or why not.

    Expired means ``now`` is past the expiry second; a credential is usable up to and including
    ``expires_at``, as coturn accepts it while the expiry is not earlier than its clock.
    """
    parsed = _USERNAME.match(username)
    if parsed is None or not _USER_ID.match(parsed.group(2)):
        return Refused.MALFORMED
    expires_at = int(parsed.group(1))
    presented = credential.encode("ascii", errors="replace")
    signed_by = [
        index
        for index, secret in enumerate(secrets)
        if secret and hmac.compare_digest(_signature(secret, username).encode(), presented)
    ]
    if not signed_by:
        return Refused.UNKNOWN_SECRET
    if math.floor(now) > expires_at:
        return Refused.EXPIRED
    return Accepted(parsed.group(2), expires_at, signed_by[0])
