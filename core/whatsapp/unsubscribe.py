"""Signed single-purpose unsubscribe tokens for the ``/u/{token}`` short link.

A token names one contact and can only withdraw that contact's WhatsApp consent: the MAC is
domain-separated so no other signed value of the application can be replayed as a token.
It is short on purpose (it travels inside a chat message): base-36 contact id, a dot and a
96-bit truncated HMAC-SHA256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_PURPOSE = b"kervan/whatsapp-unsubscribe/v1\x00"
_MAC_BYTES = 12
_MAC_CHARS = 16  # 12 bytes in base64, which needs no padding for them
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_MAX_ID_DIGITS = 13  # base 36: every 64-bit id
MAX_TOKEN_LENGTH = 64
#: Every token :func:`make_token` issues; :func:`read_token` refuses whatever else it is given.
TOKEN_PATTERN = rf"^[0-9a-z]{{1,{_MAX_ID_DIGITS}}}\.[A-Za-z0-9_-]{{{_MAC_CHARS}}}$"


def _base36(number: int) -> str:
    if number == 0:
        return "0"
    out = []
    while number:
        number, digit = divmod(number, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


def _mac(secret: str, contact_id: int) -> str:
    digest = hmac.new(secret.encode(), _PURPOSE + str(contact_id).encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:_MAC_BYTES]).decode().rstrip("=")


def make_token(secret: str, contact_id: int) -> str:
    if not secret:
        raise ValueError("an unsubscribe secret is required")
    if contact_id < 0:
        raise ValueError("contact ids are non-negative")
    return f"{_base36(contact_id)}.{_mac(secret, contact_id)}"


def read_token(secret: str, token: str) -> int | None:
    """The contact id the token was made for, or ``None`` if it is malformed or forged."""
    if not secret or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        return None
    id_part, mac_part = token.split(".")
    if not id_part or len(id_part) > _MAX_ID_DIGITS or any(char not in _DIGITS for char in id_part):
        return None
    contact_id = int(id_part, 36)
    expected = _mac(secret, contact_id)
    if not hmac.compare_digest(mac_part.encode("ascii", "replace"), expected.encode()):
        return None
    return contact_id
