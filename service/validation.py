"""Request parsing into pydantic models with one 422 listing every failing field."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from service.errors import ApiError

M = TypeVar("M", bound=BaseModel)

# orjson parses an integer literal outside [-2**63, 2**64 - 1] as a float, silently changing
# it (2**64 arrives as 1.8446744073709552e19). Such a literal has at least 19 digits; only a
# body with a digit run that long is parsed again, exactly, so the models' bounds see the
# real number and name the field.
# Digits -> "0", everything else -> " ": a run of 19 zeros marks a possible integer past 64
# bits. bytes.translate plus a substring search runs in C, ~15x faster than a regex scan.
_DIGIT_MASK = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def validation_details(exc: ValidationError, root: str) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join([root, *(str(p) for p in err["loc"])]),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]


def _exact_json(body: bytes, parsed: Any) -> Any:
    if _LONG_DIGIT_RUN not in body.translate(_DIGIT_MASK):
        return parsed
    try:
        return json.loads(body)
    except ValueError:  # orjson accepted it; keep orjson's reading
        return parsed


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes (default: the app's max_body_bytes)."""
    if limit is None:
        settings = getattr(request.app.state, "settings", None)
        limit = settings.max_body_bytes if settings is not None else 1_048_576
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_json(request: Request, limit: int | None = None) -> Any:
    body = await read_body(request, limit)
    if not body:
        raise ApiError(400, "bad_request", "a JSON body is required")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    return _exact_json(body, data)


def validate(model: type[M], data: Any, root: str = "body") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(
            422,
            "validation_failed",
            f"{exc.error_count()} field(s) failed validation",
            validation_details(exc, root),
        ) from None


async def parse_body(request: Request, model: type[M], limit: int | None = None) -> M:
    return validate(model, await parse_json(request, limit), "body")


def parse_query(request: Request, model: type[M]) -> M:
    params: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        params[key] = values if len(values) > 1 else values[0]
    return validate(model, params, "query")


def parse_path(request: Request, model: type[M], *, bad_path: int = 422) -> M:
    """The path parameters validated against ``model``, the one ``@api(path=model)`` documents.

    A value outside the documented constraints (pattern, length) is a malformed request: 422
    naming ``path.<parameter>``, like a bad query or body field. Where the route declares
    ``bad_path=404`` (ids, whose malformed values name nothing), it is the route's "no such"
    404 instead, the same answer as for a well-formed id that names nothing.
    """
    if bad_path != 404:
        return validate(model, dict(request.path_params), "path")
    try:
        return model.model_validate(request.path_params)
    except ValidationError:
        name = next(iter(model.model_fields)).removesuffix("_id")
        raise ApiError(404, "not_found", f"no such {name}") from None
