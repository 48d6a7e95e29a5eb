"""Intent targets in one spelling: the phone number a ``tel:`` link or a WhatsApp link names.

A phone intent's target is the number as dialled (``+905551112233``, or the national digits
when the link had no country code: they cannot be told apart from another country's without
guessing); a WhatsApp intent's target is the international number the chat opens (``wa.me``,
``api.whatsapp.com/send?phone=``, ``whatsapp://send?phone=``) or, for links that name no
number (group invites, ``wa.me/message/...`` short links), the canonical link itself. The call
matcher compares phone numbers in this same spelling.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

IntentKind = Literal["phone", "whatsapp"]
INTENT_KINDS: tuple[IntentKind, ...] = ("phone", "whatsapp")
#: The stored target's column width.
MAX_TARGET_LENGTH = 255

_SEPARATORS = re.compile(r"[\s().\-/]")
_NUMBER = re.compile(r"^\+?[0-9]{3,15}$")
_WA_HOSTS = frozenset({"wa.me", "api.whatsapp.com", "web.whatsapp.com", "whatsapp.com"})
_INVITE_CODE = re.compile(r"^[A-Za-z0-9_-]{6,64}$")


def normalize_phone(raw: str) -> str | None:
    """``"tel:+90 (555) 111-22-33"`` -> ``"+905551112233"``; ``None`` when it is no number.

    ``00`` becomes ``+``; an extension or parameters after ``;``, ``,`` or ``?`` are dropped.
    """
    text = unquote(raw.strip())
    if text[:4].lower() == "tel:":
        text = text[4:]
    for cut in (";", ",", "?", "#"):
        text = text.split(cut, 1)[0]
    text = _SEPARATORS.sub("", text)
    if text.startswith("00"):
        text = "+" + text[2:]
    if not _NUMBER.fullmatch(text) or text.lstrip("+").strip("0") == "":
        return None
    return text


def _international(raw: str) -> str | None:
    """A WhatsApp number: always international, written without ``+`` in its links."""
    number = normalize_phone(raw)
    if number is None:
        return None
    return number if number.startswith("+") else "+" + number


def _whatsapp_link(raw: str) -> str | None:
    try:
        parts = urlsplit(raw.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().removeprefix("www.")
    query = parse_qs(parts.query)
    if scheme == "whatsapp":
        phone = query.get("phone", [""])[0]
        return _international(phone) if phone else None
    if scheme not in ("http", "https"):
        return None
    segments = [s for s in parts.path.split("/") if s]
    if host == "wa.me":
        if len(segments) == 1:
            return _international(segments[0])
        if len(segments) == 2 and segments[0] == "message" and _INVITE_CODE.fullmatch(segments[1]):
            return f"https://wa.me/message/{segments[1]}"
        return None
    if host == "chat.whatsapp.com":
        code = segments[-1] if segments else ""
        return f"https://chat.whatsapp.com/{code}" if _INVITE_CODE.fullmatch(code) else None
    if host in _WA_HOSTS:
        if segments and segments[0] == "joinchat" and len(segments) == 2:
            code = segments[1]
            return f"https://chat.whatsapp.com/{code}" if _INVITE_CODE.fullmatch(code) else None
        phone = query.get("phone", [""])[0]
        return _international(phone) if phone else None
    return None


def normalize_target(kind: IntentKind, raw: str) -> str | None:
    """The target in its one spelling, or ``None`` when ``raw`` names no phone or chat."""
    if not raw or len(raw) > 2048:
        return None
    if kind == "phone":
        return normalize_phone(raw)
    found = _whatsapp_link(raw) if ":" in raw else _international(raw)
    if found is None or len(found) > MAX_TARGET_LENGTH:
        return None
    return found
