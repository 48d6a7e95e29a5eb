"""orjson-rendered JSON responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

import orjson
from starlette.responses import Response

_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    # pydantic models and other objects that know how to dump themselves.
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_default, option=_ORJSON_OPTIONS)


class ORJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> ORJSONResponse:
    return ORJSONResponse(data, status_code=status, headers=dict(headers) if headers else None)


def etag_matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison (RFC 9110 13.1.2): ``W/`` is ignored."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


class CookieAttributes(Protocol):
    """What a feature states about a cookie it issues (the routes only apply it)."""

    @property
    def name(self) -> str: ...
    @property
    def max_age(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def secure(self) -> bool: ...
    @property
    def httponly(self) -> bool: ...
    @property
    def samesite(self) -> Literal["lax", "strict", "none"]: ...


def set_cookie(response: Response, cookie: CookieAttributes, value: str) -> None:
    response.set_cookie(
        cookie.name,
        value,
        max_age=cookie.max_age,
        path=cookie.path,
        secure=cookie.secure,
        httponly=cookie.httponly,
        samesite=cookie.samesite,
    )


def clear_cookie(response: Response, cookie: CookieAttributes) -> None:
    # The same attributes as when set: browsers refuse a __Host- cookie without Secure.
    response.delete_cookie(
        cookie.name,
        path=cookie.path,
        secure=cookie.secure,
        httponly=cookie.httponly,
        samesite=cookie.samesite,
    )
