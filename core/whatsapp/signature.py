"""``X-Hub-Signature-256`` verification: HMAC-SHA256 of the raw request body with the app secret.

The body must be the exact bytes received; re-serialised JSON would not match.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_PREFIX = "sha256="


def sign_body(app_secret: str | bytes, body: bytes) -> str:
    """The header value Meta sends for ``body`` (used by tests, benches and fakes)."""
    key = app_secret.encode() if isinstance(app_secret, str) else app_secret
    return SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(app_secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True only when ``header`` is ``sha256=<hex>`` and matches ``body`` (constant-time compare).

    An empty secret never verifies: an unconfigured deployment must not accept forged events.
    """
    if not app_secret or header is None:
        return False
    header = header.strip()
    if not header.lower().startswith(SIGNATURE_PREFIX):
        return False
    given = header[len(SIGNATURE_PREFIX) :].strip().lower()
    expected = sign_body(app_secret, body)[len(SIGNATURE_PREFIX) :]
    return hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii"))
