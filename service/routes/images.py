"""Progressive images: ingest, manifest, signed variants, IIIF level 0 tiles, snippet and demo."""

from __future__ import annotations

import html
from importlib import resources
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message

from core.errors import NotFound
from core.images.errors import ImageTooLarge
from core.images.formats import OutputFormat
from core.images.manifest import FULL_STAGE, STAGES, build_manifest
from core.images.negotiation import negotiate
from service.endpoint import admin_principal, api
from service.errors import ApiError
from service.images.facility import ImagesFacility, StoredImage
from service.images.markup import preload_link, progressive_img
from service.middleware.security import csp_nonce
from service.responses import json_response
from service.runtime import get_runtime
from service.validation import read_body, validate

IMMUTABLE = "public, max-age=31536000, immutable"
# Multipart framing and the alt field on top of the image itself.
_FORM_OVERHEAD = 64 * 1024
_MAX_ALT = 1000


class UrlIngestIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048)
    alt: str = Field(min_length=1, max_length=_MAX_ALT)


class VariantQuery(BaseModel):
    """Query of a signed variant URL (documentation only; the handler checks it itself)."""

    s: str = Field(description="HMAC signature over the path and the other parameters")
    stage: Literal["small", "full"] = "full"


class StageOut(BaseModel):
    src: str
    width: int
    type: str


class SrcsetEntry(BaseModel):
    src: str
    width: int


class ManifestOut(BaseModel):
    id: str
    width: int
    height: int
    alt: str
    blurhash: str
    preview: str
    dominant_color: str
    small: StageOut
    srcset: dict[str, list[SrcsetEntry]]
    srcset_strings: dict[str, str]
    sizes: str
    preload: dict[str, str]
    tiles: dict[str, str] | None = None


def _facility(request: Request) -> ImagesFacility:
    facility = get_runtime(request).facility(ImagesFacility)
    return facility


def _manifest(facility: ImagesFacility, stored: StoredImage, base_url: str) -> dict[str, Any]:
    manifest = build_manifest(
        stored.facts,
        ladder=facility.ladder,
        signer=facility.signer,
        small_width=facility.settings.images_small_width,
        base_url=base_url,
    )
    manifest["tiles"] = (
        {"iiif": f"{base_url}/iiif/{stored.facts.image_id}/info.json"}
        if facility.tiles_available(stored)
        else None
    )
    return manifest


async def _form_from(request: Request, limit: int) -> tuple[bytes, str]:
    body = await read_body(request, limit)

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async with Request(request.scope, replay).form(max_files=1, max_fields=4) as form:
        upload = form.get("file")
        alt = form.get("alt")
        data = await upload.read() if isinstance(upload, UploadFile) else b""
    problems = []
    if not isinstance(upload, UploadFile):
        problems.append({"field": "body.file", "message": "an image file is required"})
    if not isinstance(alt, str) or not alt.strip():
        problems.append({"field": "body.alt", "message": "alt text is required"})
    elif len(alt) > _MAX_ALT:
        problems.append({"field": "body.alt", "message": f"at most {_MAX_ALT} characters"})
    if problems:
        raise ApiError(422, "validation_failed", f"{len(problems)} field(s) failed", problems)
    assert isinstance(alt, str)
    return data, alt.strip()


@api(
    "Ingest an image (multipart upload, or JSON with a URL from an allowed host)",
    body=UrlIngestIn,
    response=ManifestOut,
    status=201,
    tags=["images"],
    responses={413: "Image too large", 415: "Unsupported content type", 422: "Bad image"},
    admin=True,
)
async def ingest(request: Request) -> Response:
    principal = admin_principal(request)
    facility = _facility(request)
    limit = facility.settings.images_max_bytes
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    source_url: str | None = None
    try:
        if content_type == "multipart/form-data":
            data, alt = await _form_from(request, limit + _FORM_OVERHEAD)
        elif content_type == "application/json":
            body = await read_body(request, 16 * 1024)
            try:
                raw = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
            parsed = validate(UrlIngestIn, raw)
            source_url = parsed.url
            alt = parsed.alt.strip()
            data = await facility.fetcher.fetch(parsed.url)
        else:
            raise ApiError(
                415,
                "unsupported_media_type",
                "send multipart/form-data (file, alt) or application/json (url, alt)",
            )
        stored = await facility.ingest(
            data, alt, actor=f"admin:{principal.id}", source_url=source_url
        )
    except ImageTooLarge as exc:
        raise ApiError(413, exc.code, exc.message, exc.details) from None
    base = request.app.state.settings.public_origin
    return json_response(_manifest(facility, stored, base), status=201)


@api("Everything a progressive image component needs", response=ManifestOut, tags=["images"])
async def manifest(request: Request) -> Response:
    facility = _facility(request)
    stored = await facility.get(request.path_params["image_id"])
    base = request.app.state.settings.public_origin
    return json_response(
        _manifest(facility, stored, base), headers={"Cache-Control": "public, max-age=300"}
    )


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    # If-None-Match uses the weak comparison.
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def _parse_variant_name(name: str) -> tuple[int, str]:
    width_text, dot, fmt = name.partition(".")
    if not dot or not width_text.isdigit() or len(width_text) > 6:
        raise ApiError(
            422, "bad_variant", "variant names look like <width>.<format>", {"name": name}
        )
    return int(width_text), fmt


@api(
    "A signed image variant (format avif, webp, jpeg, or auto from Accept)",
    query=VariantQuery,
    tags=["images"],
    media_type="image/*",
    responses={304: "Not modified", 403: "Bad signature", 422: "Bad width or format"},
)
async def variant(request: Request) -> Response:
    facility = _facility(request)
    query = request.query_params
    if len(query.keys()) != len(query.multi_items()):
        raise ApiError(422, "bad_query", "repeated query parameters are not allowed")
    facility.signer.verify(request.url.path, dict(query))
    width, fmt_name = _parse_variant_name(request.path_params["name"])
    stage = query.get("stage", FULL_STAGE)
    if stage not in STAGES:
        raise ApiError(422, "bad_stage", f"stage must be one of {list(STAGES)}")
    if width not in facility.ladder:
        raise ApiError(
            422, "bad_width", "width is not on the ladder", {"allowed": facility.ladder.widths}
        )
    headers = {"Cache-Control": IMMUTABLE}
    if fmt_name == "auto":
        fmt = negotiate(request.headers.get("accept"))
        headers["Vary"] = "Accept"
    else:
        try:
            fmt = OutputFormat(fmt_name)
        except ValueError:
            raise ApiError(
                422,
                "bad_format",
                "format must be avif, webp, jpeg or auto",
                {"format": fmt_name},
            ) from None
    stored = await facility.get(request.path_params["image_id"])
    key = facility.variant_key(stored, width, fmt, stage)
    etag = key.etag()
    headers["ETag"] = etag
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    data = await facility.variant(key)
    return Response(data, media_type=fmt.media_type, headers=headers)


async def _tiled(request: Request) -> tuple[ImagesFacility, StoredImage]:
    facility = _facility(request)
    stored = await facility.get(request.path_params["image_id"])
    if not facility.tiles_available(stored):
        raise NotFound("this image is too small for tiles", details={"id": stored.facts.image_id})
    return facility, stored


@api("IIIF Image API 3.0 level 0 image information", tags=["images"])
async def iiif_info(request: Request) -> Response:
    facility, stored = await _tiled(request)
    base = request.app.state.settings.public_origin
    info = await facility.tiles.info(
        stored.content_key,
        f"{base}/iiif/{stored.facts.image_id}",
        facility.originals.get,
    )
    return Response(
        orjson.dumps(info),
        media_type='application/ld+json;profile="http://iiif.io/api/image/3/context.json"',
        headers={"Cache-Control": "public, max-age=86400", "Access-Control-Allow-Origin": "*"},
    )


@api("One IIIF level 0 tile", tags=["images"], media_type="image/jpeg")
async def iiif_tile(request: Request) -> Response:
    facility, stored = await _tiled(request)
    p = request.path_params
    data = await facility.tiles.tile(
        stored.content_key,
        p["region"],
        p["size"],
        p["rotation"],
        p["quality_format"],
        facility.originals.get,
    )
    return Response(
        data,
        media_type="image/jpeg",
        headers={"Cache-Control": IMMUTABLE, "Access-Control-Allow-Origin": "*"},
    )


_SNIPPET = resources.files("service.static").joinpath("progressive-image.js")


async def snippet(request: Request) -> Response:
    return Response(
        _SNIPPET.read_bytes(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=3600"},
    )


_DEMO_REPORT = """
(function () {
  var report = { cls: 0, shifts: [], stages: {} };
  var out = document.getElementById("kv-report");
  function show() { out.textContent = JSON.stringify(report); }
  if (window.PerformanceObserver) {
    try {
      new PerformanceObserver(function (list) {
        list.getEntries().forEach(function (e) {
          if (!e.hadRecentInput) { report.cls += e.value; report.shifts.push(e.value); }
        });
        show();
      }).observe({ type: "layout-shift", buffered: true });
    } catch (e) { report.cls = null; }
  }
  document.addEventListener("kv:stage", function (ev) {
    var el = ev.target;
    (report.stages[el.id] = report.stages[el.id] || []).push(ev.detail.stage);
    var box = el.getBoundingClientRect();
    report[el.id] = { src: el.currentSrc || el.src, width: box.width, height: box.height,
                      natural: el.naturalWidth };
    show();
    if (el.id === "hero" && ev.detail.stage === "full" && location.hash === "#scroll") {
      document.getElementById("below").scrollIntoView();
    }
  }, true);
})();
"""


async def demo(request: Request) -> Response:
    facility = _facility(request)
    stored = await facility.get(request.path_params["image_id"])
    # Same origin as the page, so relative URLs.
    manifest = _manifest(facility, stored, "")
    nonce = csp_nonce(request.scope)
    alt = html.escape(stored.facts.alt)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Progressive image: {alt}</title>
{preload_link(manifest)}
<style nonce="{nonce}">
body{{font:15px system-ui,sans-serif;margin:0 auto;max-width:960px;padding:1rem}}
img.kv-progressive{{display:block;max-width:100%;height:auto;background:{stored.facts.dominant_color}}}
.spacer{{height:1600px}} pre{{white-space:pre-wrap;font-size:12px}}
</style></head>
<body>
<h1>Progressive image demo</h1>
<p>Placeholder, then a small AVIF, then full quality when the browser is idle.
The box is reserved by width/height, so nothing moves.</p>
{progressive_img(manifest, priority=True).replace("<img ", '<img id="hero" ', 1)}
<div class="spacer"></div>
<p>Below the fold: loads when scrolled into view.</p>
{progressive_img(manifest).replace("<img ", '<img id="below" ', 1)}
<h2>Stages and layout shifts</h2>
<pre id="kv-report">{{}}</pre>
<script nonce="{nonce}">{_DEMO_REPORT}</script>
<script nonce="{nonce}" src="/static/progressive-image.js"></script>
</body></html>"""
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


routes: list[BaseRoute] = [
    Route("/admin/images", ingest, methods=["POST"]),
    Route("/images/{image_id}/manifest", manifest, methods=["GET"]),
    Route("/images/{image_id}/demo", demo, methods=["GET"], include_in_schema=False),
    Route("/img/{image_id}/{name}", variant, methods=["GET"]),
    Route("/iiif/{image_id}/info.json", iiif_info, methods=["GET"]),
    Route(
        "/iiif/{image_id}/{region}/{size}/{rotation}/{quality_format}",
        iiif_tile,
        methods=["GET"],
    ),
    Route("/static/progressive-image.js", snippet, methods=["GET"], include_in_schema=False),
]
