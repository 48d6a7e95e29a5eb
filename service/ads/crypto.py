"""Sites' OAuth refresh tokens at rest: AES-256-GCM with the key from ``KERVAN_ADS_TOKEN_KEY``.

A stored token is ``v1.`` + url-safe base64 of ``nonce (12 bytes) || ciphertext || tag``. The
site id is the associated data, so a ciphertext copied onto another site's connection does not
decrypt (and cannot be used to upload for that site). A token that does not decrypt (another key,
a damaged row) raises ``TokenUnreadable``: the site's uploads pause until the owner connects
again, instead of failing every conversion.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from service.ads.settings import decode_token_key

PREFIX = "v1."
NONCE_BYTES = 12


class TokenUnreadable(Exception):
    """The stored token does not decrypt with the configured key."""


def _aad(site_id: int) -> bytes:
    return f"kervan:ads-refresh-token:site:{site_id}".encode()


class TokenCipher:
    def __init__(self, key: str) -> None:
        # Imported here: only a deployment that stores tokens needs the library.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead: Any = AESGCM(decode_token_key(key))

    def encrypt(self, token: str, *, site_id: int) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, token.encode(), _aad(site_id))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decrypt(self, stored: str, *, site_id: int) -> str:
        from cryptography.exceptions import InvalidTag

        if not stored.startswith(PREFIX):
            raise TokenUnreadable("unknown token format")
        body = stored[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain: bytes = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(site_id))
        except (binascii.Error, ValueError, InvalidTag):
            raise TokenUnreadable(
                "the stored token does not decrypt with the configured key"
            ) from None
        return plain.decode()
