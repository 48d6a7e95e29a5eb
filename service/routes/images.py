"""Progressive images: ingest, manifest, signed variants, IIIF level 0 tiles, snippet and demo."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field, RootModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from core.images.errors import ImageTooLarge
from core.images.ids import IMAGE_ID_PATTERN
from core.images.signing import SIGNATURE_PATTERN
from core.images.variant_request import VARIANT_NAME_PATTERN, variant_name_pattern
from service.endpoint import admin_principal, api
from service.errors import ApiError
from service.images.demo import demo_page
from service.images.facility import ImagesFacility
from service.images.tiles import (
    QUALITY_FORMAT_PATTERN,
    REGION_PATTERN,
    ROTATION_PATTERN,
    SIZE_PATTERN,
)
from service.images.upload import UrlIngestIn, read_ingest_source
from service.middleware.security import csp_nonce
from service.openapi import runtime_schema
from service.responses import etag_matches, json_response
from service.runtime import get_runtime

IMMUTABLE = "public, max-age=31536000, immutable"
IIIF_MEDIA_TYPE = 'application/ld+json;profile="http://iiif.io/api/image/3/context.json"'
_NO_IMAGE = "No image with this id"


class ImagePath(BaseModel):
    image_id: str = Field(
        pattern=IMAGE_ID_PATTERN,
        description="24 lower-case hex digits, as minted at ingest; any other id is 404",
    )


def _ladder_names(app: Any) -> dict[str, Any]:
    return {"pattern": variant_name_pattern(app.state.settings.images_widths)}


class VariantPath(ImagePath):
    name: str = Field(
        pattern=VARIANT_NAME_PATTERN,
        description="<width>.<format>: a width of the configured ladder (KERVAN_IMAGES_WIDTHS; "
        "any other is 422 bad_width) and avif, webp, jpeg, or auto (chosen from Accept)",
        examples=["640.avif"],
        # The running app's document names exactly the widths of its ladder.
        json_schema_extra=runtime_schema("images_variant_names", _ladder_names),
    )


class TilePath(ImagePath):
    """IIIF level 0: only the published tiles exist; anything else is 404."""

    region: str = Field(pattern=REGION_PATTERN, examples=["0,0,512,512"])
    size: str = Field(pattern=SIZE_PATTERN, examples=["512,"])
    rotation: str = Field(pattern=ROTATION_PATTERN)
    quality_format: str = Field(pattern=QUALITY_FORMAT_PATTERN)


class VariantQuery(BaseModel):
    """Query of a signed variant URL, each parameter at most once (documentation; the handler
    checks the signature over the path and every parameter)."""

    s: str = Field(
        pattern=SIGNATURE_PATTERN,
        description="HMAC signature over the path and the other parameters (403 if wrong)",
    )
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


class IiifSizeOut(BaseModel):
    width: int
    height: int


class IiifTilesOut(BaseModel):
    width: int
    height: int | None = None
    scale_factors: list[int] = Field(alias="scaleFactors")


class IiifInfoOut(BaseModel):
    """IIIF Image API 3.0 ``info.json`` (level 0): the published sizes and tiles."""

    context: str = Field(alias="@context")
    id: str
    type: Literal["ImageService3"]
    protocol: Literal["http://iiif.io/api/image"]
    profile: Literal["level0"]
    width: int
    height: int
    sizes: list[IiifSizeOut] | None = None
    tiles: list[IiifTilesOut] | None = None


class ImageFile(RootModel[bytes]):
    """The encoded image."""


def _images(request: Request) -> ImagesFacility:
    return get_runtime(request).facility(ImagesFacility)


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
    actor = f"admin:{admin_principal(request).id}"
    images = _images(request)
    try:
        source = await read_ingest_source(request, images.settings.images_max_bytes)
        stored = await images.ingest_from(source, actor=actor)
    except ImageTooLarge as exc:
        raise ApiError(413, exc.code, exc.message, exc.details) from None
    return json_response(images.manifest(stored), status=201)


@api(
    "Everything a progressive image component needs",
    path=ImagePath,
    bad_path=404,
    response=ManifestOut,
    tags=["images"],
    responses={404: _NO_IMAGE},
)
async def manifest(request: Request) -> Response:
    images = _images(request)
    stored = await images.get(request.path_params["image_id"])
    return json_response(images.manifest(stored), headers={"Cache-Control": "public, max-age=300"})


@api(
    "A signed image variant (format avif, webp, jpeg, or auto from Accept)",
    path=VariantPath,
    bad_path=404,
    query=VariantQuery,
    response=ImageFile,
    tags=["images"],
    media_type="image/*",
    responses={
        304: "Not modified",
        403: "Bad signature",
        404: _NO_IMAGE,
        422: "Bad name, stage, width or format, or a repeated query parameter",
    },
)
async def variant(request: Request) -> Response:
    query = request.query_params
    if len(query.keys()) != len(query.multi_items()):
        raise ApiError(422, "bad_query", "repeated query parameters are not allowed")
    images = _images(request)
    resolved = await images.resolve_variant(
        request.url.path,
        dict(query),
        request.path_params["image_id"],
        request.path_params["name"],
        request.headers.get("accept"),
    )
    headers = {"Cache-Control": IMMUTABLE}
    if resolved.request.negotiated:
        headers["Vary"] = "Accept"
    etag = resolved.key.etag()
    headers["ETag"] = etag
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    data = await images.variant(resolved.key)
    return Response(data, media_type=resolved.key.fmt.media_type, headers=headers)


@api(
    "IIIF Image API 3.0 level 0 image information",
    path=ImagePath,
    bad_path=404,
    response=IiifInfoOut,
    media_type=IIIF_MEDIA_TYPE,
    tags=["images"],
    responses={404: "No such image, or too small for tiles"},
)
async def iiif_info(request: Request) -> Response:
    info = await _images(request).iiif_info(request.path_params["image_id"])
    return Response(
        orjson.dumps(info),
        media_type=IIIF_MEDIA_TYPE,
        headers={"Cache-Control": "public, max-age=86400", "Access-Control-Allow-Origin": "*"},
    )


@api(
    "One IIIF level 0 tile",
    path=TilePath,
    bad_path=404,
    response=ImageFile,
    media_type="image/jpeg",
    tags=["images"],
    responses={404: "No such image or tile"},
)
async def iiif_tile(request: Request) -> Response:
    p = request.path_params
    data = await _images(request).iiif_tile(
        p["image_id"], p["region"], p["size"], p["rotation"], p["quality_format"]
    )
    return Response(
        data,
        media_type="image/jpeg",
        headers={"Cache-Control": IMMUTABLE, "Access-Control-Allow-Origin": "*"},
    )


async def demo(request: Request) -> Response:
    images = _images(request)
    stored = await images.get(request.path_params["image_id"])
    page = demo_page(images.manifest(stored, relative=True), csp_nonce(request.scope))
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
]
