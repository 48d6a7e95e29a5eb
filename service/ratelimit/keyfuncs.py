"""Key functions: which client a policy counts a request against.

Each takes the request and returns the key, or ``None`` when the request carries no such
identity (the policy is then skipped for that request; another policy, usually per IP, still
applies).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request

from service.auth import authenticated_admin
from service.clientip import client_ip
from service.errors import ApiError
from service.validation import read_body

KeyFunc = Callable[[Request], Awaitable[str | None]]

_PHONE_NOISE = re.compile(r"[\s().\-]")
_PHONE = re.compile(r"^\+?[1-9]\d{6,14}$")


async def by_client_ip(request: Request) -> str:
    """The client address, X-Forwarded-For honoured only from trusted proxies."""
    return client_ip(request)


async def by_admin(request: Request) -> str | None:
    """The authenticated admin's id; ``None`` for unauthenticated requests (they get 401)."""
    try:
        principal = await authenticated_admin(request)
    except ApiError:
        return None
    return principal.id


def api_key_digest(key: str) -> str:
    # The state backend must never hold usable credentials, only a digest of them.
    return hashlib.sha256(key.encode()).hexdigest()[:32]


async def by_api_key(request: Request) -> str | None:
    """A digest of the presented API key (``X-API-Key`` or ``Authorization: Bearer``)."""
    presented = request.headers.get("x-api-key")
    if presented is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return api_key_digest(presented) if presented else None


def normalize_phone(raw: str) -> str | None:
    """``"+90 (532) 123-45-67"`` -> ``"+905321234567"``; ``None`` when it is no phone number."""
    text = _PHONE_NOISE.sub("", raw)
    if text.startswith("00"):
        text = "+" + text[2:]
    if not _PHONE.match(text):
        return None
    return text if text.startswith("+") else "+" + text


def by_phone(field: str = "phone") -> KeyFunc:
    """The phone number in the JSON body's ``field``, normalised so formatting cannot evade it."""

    async def key(request: Request) -> str | None:
        body = await read_body(request)
        # Starlette replays a cached body to later readers, so the handler can still parse it.
        request._body = body
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return None
        value = data.get(field) if isinstance(data, dict) else None
        return normalize_phone(value) if isinstance(value, str) else None

    return key
