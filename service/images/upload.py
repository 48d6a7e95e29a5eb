"""Reading an ingest request: a multipart upload (``file``, ``alt``) or JSON (``url``, ``alt``)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from core.images.errors import SourceFetchFailed, SourceNotAllowed
from service.errors import ApiError
from service.images.facility import IngestSource
from service.openapi import validation_rules
from service.validation import read_body, validate

MAX_ALT = 1000
#: Multipart framing and the alt field on top of the image itself.
FORM_OVERHEAD = 64 * 1024
MAX_JSON_BODY = 16 * 1024


class UrlIngestIn(BaseModel):
    # Whether a URL may be fetched depends on the deployment's allow-list and on what its host
    # resolves to and answers at the time; the refusals' codes are the rules' names.
    model_config = ConfigDict(
        json_schema_extra=validation_rules(SourceNotAllowed.code, SourceFetchFailed.code)
    )

    url: str = Field(
        min_length=1,
        max_length=2048,
        description="An https URL on a host of KERVAN_IMAGES_SOURCE_HOSTS (exact names, ports "
        "443 or 80, no credentials), resolving to public addresses only; otherwise 422 "
        "source_not_allowed. A source that does not resolve, answers with an error or too "
        "slowly is 422 source_fetch_failed.",
    )
    alt: str = Field(min_length=1, max_length=MAX_ALT)


async def _from_form(request: Request, limit: int) -> IngestSource:
    body = await read_body(request, limit)

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async with Request(request.scope, replay).form(max_files=1, max_fields=4) as form:
        upload = form.get("file")
        alt = form.get("alt")
        data = await upload.read() if isinstance(upload, UploadFile) else b""
    problems: list[dict[str, Any]] = []
    if not isinstance(upload, UploadFile):
        problems.append({"field": "body.file", "message": "an image file is required"})
    if not isinstance(alt, str) or not alt.strip():
        problems.append({"field": "body.alt", "message": "alt text is required"})
    elif len(alt) > MAX_ALT:
        problems.append({"field": "body.alt", "message": f"at most {MAX_ALT} characters"})
    if problems:
        raise ApiError(422, "validation_failed", f"{len(problems)} field(s) failed", problems)
    assert isinstance(alt, str)
    return IngestSource(alt.strip(), data=data)


async def _from_json(request: Request) -> IngestSource:
    body = await read_body(request, MAX_JSON_BODY)
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
    parsed = validate(UrlIngestIn, raw)
    return IngestSource(parsed.alt.strip(), url=parsed.url)


async def read_ingest_source(request: Request, max_image_bytes: int) -> IngestSource:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _from_form(request, max_image_bytes + FORM_OVERHEAD)
    if content_type == "application/json":
        return await _from_json(request)
    raise ApiError(
        415,
        "unsupported_media_type",
        "send multipart/form-data (file, alt) or application/json (url, alt)",
    )
