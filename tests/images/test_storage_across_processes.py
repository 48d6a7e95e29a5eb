"""The issue's case: an image ingested through one process (pod A) is served, every variant and
tile of it, by another (pod B) that shares only the database and the originals' storage, after
pod A and its disk are gone. With ``file`` storage it is not, which is why the setting exists."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from service.images.facility import ImagesFacility
from service.settings import Settings
from tests.images import samples
from tests.images.s3server import s3_settings
from tests.services import free_port

ADMIN = {"Authorization": "Bearer test-admin-key"}
ClientFactory = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
FORMATS = {"avif": "AVIF", "webp": "WEBP", "jpeg": "JPEG"}


@pytest.fixture(params=["database", "s3"])
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "database":
        return {"images_storage": "database"}
    endpoint = request.getfixturevalue("s3_endpoint")
    return s3_settings(endpoint, request.getfixturevalue("s3_bucket"))


def pod(make_settings: Callable[..., Settings], folder: Path, **values: Any) -> Settings:
    """One process's settings: a data and images folder of its own."""
    return make_settings(
        data_dir=folder / "data",
        images_dir=folder / "images",
        images_widths="320,640,960",
        images_tile_min_pixels=1_000_000,
        public_origin="http://testserver",
        **values,
    )


def facility(client: httpx.AsyncClient) -> ImagesFacility:
    found: ImagesFacility = client.app.state.runtime.facility(ImagesFacility)  # type: ignore[attr-defined]
    return found


async def upload(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
    return await client.post(
        "/admin/images",
        files={"file": ("card.jpg", data, "application/octet-stream")},
        data={"alt": "A card"},
        headers=ADMIN,
    )


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_every_variant_is_served_by_another_process(
    make_settings: Callable[..., Settings],
    make_client: ClientFactory,
    database_url: str,
    storage: dict[str, Any],
    tmp_path: Path,
) -> None:
    pod_a = pod(make_settings, tmp_path / "a", database_url=database_url, **storage)
    pod_b = pod(make_settings, tmp_path / "b", database_url=database_url, **storage)
    async with make_client(pod_a) as a:
        created = await upload(a, samples.jpeg(1300, 900, seed=11))
        assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    shutil.rmtree(tmp_path / "a")  # pod A is gone, and its emptyDir with it

    async with make_client(pod_b) as b:
        manifest = (await b.get(f"/images/{image_id}/manifest")).json()
        wanted = [
            (fmt, entry["width"], entry["src"])
            for fmt, entries in manifest["srcset"].items()
            for entry in entries
        ]
        wanted.append(("avif", manifest["small"]["width"], manifest["small"]["src"]))
        assert {fmt for fmt, _, _ in wanted} == set(FORMATS)
        for fmt, width, src in wanted:
            got = await b.get(relative(src))
            assert got.status_code == 200, (src, got.text)
            assert got.headers["content-type"] == f"image/{fmt}"
            image = Image.open(io.BytesIO(got.content))
            assert image.format == FORMATS[fmt]
            assert image.size == (width, round(width * 900 / 1300))
        info = await b.get(f"/iiif/{image_id}/info.json")
        assert info.status_code == 200, info.text
        tile = await b.get(f"/iiif/{image_id}/0,0,512,512/512,512/0/default.jpg")
        assert tile.status_code == 200
        assert Image.open(io.BytesIO(tile.content)).size == (512, 512)

        here = facility(b)
        assert here.variants.renders == len(wanted)  # rendered here, from the shared original
        stored = await here.get(image_id)
        copy = tmp_path / "b" / "images" / "variants" / stored.content_key[:2]
        assert (copy / stored.content_key / "original").exists()  # fetched once, kept locally


async def test_with_file_storage_another_process_cannot_serve_it(
    make_settings: Callable[..., Settings], make_client: ClientFactory, tmp_path: Path
) -> None:
    # Both share the SQLite file of make_settings, but not their folders.
    async with make_client(pod(make_settings, tmp_path / "a")) as a:
        created = (await upload(a, samples.jpeg(700, 500))).json()
    async with make_client(pod(make_settings, tmp_path / "b")) as b:
        got = await b.get(relative(created["srcset"]["webp"][0]["src"]))
    assert got.status_code == 404
    assert got.json()["error"]["code"] == "not_found"


async def test_an_object_store_outage_is_503_not_500(
    make_settings: Callable[..., Settings],
    make_client: ClientFactory,
    s3_endpoint: str,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    live = pod(make_settings, tmp_path / "a", **s3_settings(s3_endpoint, s3_bucket))
    unreachable = f"http://127.0.0.1:{free_port()}"
    down = pod(make_settings, tmp_path / "b", **s3_settings(unreachable, s3_bucket))
    async with make_client(live) as a:
        created = (await upload(a, samples.jpeg(700, 500))).json()
    async with make_client(down) as b:
        variant = await b.get(relative(created["srcset"]["jpeg"][0]["src"]))
        ingest = await upload(b, samples.jpeg(300, 200, seed=2))
    for response in (variant, ingest):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"]
        error = response.json()["error"]
        assert error["code"] == "backend_unavailable"
        assert error["details"] == {"component": "object_store"}
