"""Signed variant URLs: an HMAC over the path and every parameter, so only sizes and formats the
server handed out can be requested (nobody can make it render arbitrary variants)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlencode

from core.images.errors import BadSignature

SIGNATURE_PARAM = "s"
# 128 bits of the SHA-256 MAC: plenty against forgery, keeps URLs short.
_SIGNATURE_BYTES = 16
#: What a signature looks like (unpadded base64url of those bytes), as the API documents it.
SIGNATURE_PATTERN = f"^[A-Za-z0-9_-]{{{(_SIGNATURE_BYTES * 4 + 2) // 3}}}$"


class UrlSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the URL signing key must be at least 16 bytes")
        self._key = key

    @staticmethod
    def _canonical(path: str, params: Mapping[str, str]) -> bytes:
        query = urlencode(sorted((k, v) for k, v in params.items() if k != SIGNATURE_PARAM))
        return f"{path}?{query}".encode()

    def signature(self, path: str, params: Mapping[str, str]) -> str:
        mac = hmac.new(self._key, self._canonical(path, params), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:_SIGNATURE_BYTES]).rstrip(b"=").decode()

    def sign(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """The path with its parameters and signature as a query string."""
        all_params = dict(params or {})
        all_params[SIGNATURE_PARAM] = self.signature(path, all_params)
        return f"{path}?{urlencode(sorted(all_params.items()))}"

    def verify(self, path: str, params: Mapping[str, str]) -> None:
        """Raises ``BadSignature`` unless ``params[s]`` is the MAC of the path and other params."""
        given = params.get(SIGNATURE_PARAM, "")
        expected = self.signature(path, params)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise BadSignature("the image URL signature is missing or invalid")
