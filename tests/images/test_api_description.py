"""The image operations in ``/openapi.json`` state what the handlers enforce: path forms from the
same constants, 404 for unknown ids, and a schema or media type for every success."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.images.ids import IMAGE_ID_PATTERN
from core.images.signing import SIGNATURE_PATTERN
from core.images.variant_request import variant_name_pattern
from service.images import tiles
from service.images.facility import ImagesFacility
from service.routes.images import IiifInfoOut, ManifestOut
from service.settings import Settings
from tests.images import samples

ADMIN = {"Authorization": "Bearer test-admin-key"}
ClientFactory = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
IMAGE_PATHS = [
    "/images/{image_id}/manifest",
    "/img/{image_id}/{name}",
    "/iiif/{image_id}/info.json",
    "/iiif/{image_id}/{region}/{size}/{rotation}/{quality_format}",
]


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings], make_client: ClientFactory, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        images_dir=tmp_path / "images",
        images_tile_min_pixels=1_000_000,
        public_origin="http://testserver",
    )
    async with make_client(settings) as c:
        yield c


async def _operations(client: httpx.AsyncClient) -> dict[str, Any]:
    doc = (await client.get("/openapi.json")).json()
    return {path: doc["paths"][path]["get"] for path in IMAGE_PATHS}


def _path_params(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "path"}


async def test_path_parameters_carry_the_enforced_patterns(client: httpx.AsyncClient) -> None:
    operations = await _operations(client)
    for path, operation in operations.items():
        assert _path_params(operation)["image_id"]["pattern"] == IMAGE_ID_PATTERN, path
        assert "404" in operation["responses"], path
    # The running app names exactly the widths of its ladder.
    widths = client.app.state.settings.images_widths  # type: ignore[attr-defined]
    assert _path_params(operations["/img/{image_id}/{name}"])["name"]["pattern"] == (
        variant_name_pattern(widths)
    )
    tile = _path_params(operations[IMAGE_PATHS[3]])
    assert (
        tile["region"]["pattern"],
        tile["size"]["pattern"],
        tile["rotation"]["pattern"],
        tile["quality_format"]["pattern"],
    ) == (
        tiles.REGION_PATTERN,
        tiles.SIZE_PATTERN,
        tiles.ROTATION_PATTERN,
        tiles.QUALITY_FORMAT_PATTERN,
    )
    variant = operations["/img/{image_id}/{name}"]
    query = {p["name"]: p for p in variant["parameters"] if p["in"] == "query"}
    assert query["s"]["schema"]["pattern"] == SIGNATURE_PATTERN
    assert {"304", "403", "404", "422"} <= set(variant["responses"])


async def test_every_success_documents_its_content(client: httpx.AsyncClient) -> None:
    operations = await _operations(client)
    binary = {"type": "string", "format": "binary"}
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]

    def content(path: str, status: str = "200") -> dict[str, Any]:
        found: dict[str, Any] = operations[path]["responses"][status]["content"]
        return found

    def resolved(media: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = schemas[media["schema"]["$ref"].rsplit("/", 1)[-1]]
        return found

    assert binary.items() <= resolved(content(IMAGE_PATHS[1])["image/*"]).items()
    assert binary.items() <= resolved(content(IMAGE_PATHS[3])["image/jpeg"]).items()
    (iiif_media,) = content(IMAGE_PATHS[2])
    assert iiif_media.startswith("application/ld+json")
    assert "@context" in resolved(content(IMAGE_PATHS[2])[iiif_media])["properties"]
    ingest = doc["paths"]["/admin/images"]["post"]["responses"]["201"]["content"]
    assert "$ref" in ingest["application/json"]["schema"]


async def test_unknown_or_malformed_ids_are_404_on_every_image_route(
    client: httpx.AsyncClient,
) -> None:
    signer = client.app.state.runtime.facility(ImagesFacility).signer  # type: ignore[attr-defined]
    for image_id in ["0" * 24, "A" * 24, "nosuchimage", "0" * 25]:
        for url in [
            f"/images/{image_id}/manifest",
            signer.sign(f"/img/{image_id}/320.jpeg", {"stage": "full"}),
            f"/iiif/{image_id}/info.json",
            f"/iiif/{image_id}/full/max/0/default.jpg",
        ]:
            response = await client.get(url)
            assert response.status_code == 404, url
            assert response.json()["error"]["code"] == "not_found"


async def test_responses_match_their_documented_schemas(client: httpx.AsyncClient) -> None:
    upload = await client.post(
        "/admin/images",
        files={"file": ("a.jpg", samples.jpeg(1400, 1000), "image/jpeg")},
        data={"alt": "Large"},
        headers=ADMIN,
    )
    assert upload.status_code == 201, upload.text
    ManifestOut.model_validate(upload.json())
    image_id = upload.json()["id"]
    ManifestOut.model_validate((await client.get(f"/images/{image_id}/manifest")).json())
    info = await client.get(f"/iiif/{image_id}/info.json")
    assert info.headers["content-type"].startswith("application/ld+json")
    IiifInfoOut.model_validate(info.json())


async def test_a_non_ascii_digit_width_is_a_bad_name_not_a_crash(
    client: httpx.AsyncClient,
) -> None:
    signer = client.app.state.runtime.facility(ImagesFacility).signer  # type: ignore[attr-defined]
    for name in ["²20.jpeg", "٣٢٠.jpeg"]:
        response = await client.get(signer.sign(f"/img/{'0' * 24}/{name}", {"stage": "full"}))
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "bad_variant"
