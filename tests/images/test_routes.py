"""The images HTTP surface end to end, through the real app (embedded SQLite)."""

from __future__ import annotations

import asyncio
import io
import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from PIL import Image, ImageStat

from core.images.ssrf import IPAddress, SourcePolicy
from service.images.facility import ImagesFacility
from service.images.fetcher import FetchLimits, SafeFetcher
from service.settings import Settings
from service.static_assets import asset_url
from tests.images import samples

ADMIN = {"Authorization": "Bearer test-admin-key"}
ClientFactory = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings], make_client: ClientFactory, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        images_dir=tmp_path / "images",
        images_tile_min_pixels=1_000_000,
        images_max_bytes=2_000_000,
        images_source_hosts="localhost,images.test",
        public_origin="http://testserver",
    )
    async with make_client(settings) as c:
        yield c


def _facility(client: httpx.AsyncClient) -> ImagesFacility:
    facility = client.app.state.runtime.facility(ImagesFacility)  # type: ignore[attr-defined]
    return facility


async def _upload(
    client: httpx.AsyncClient, data: bytes, alt: str | None = "A test card"
) -> httpx.Response:
    fields = {"alt": alt} if alt is not None else {}
    return await client.post(
        "/admin/images",
        files={"file": ("whatever.bin", data, "application/octet-stream")},
        data=fields,
        headers=ADMIN,
    )


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_ingest_then_every_variant_decodes(client: httpx.AsyncClient) -> None:
    response = await _upload(client, samples.jpeg(1100, 700, seed=5))
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["width"], created["height"], created["alt"]) == (1100, 700, "A test card")
    manifest = (await client.get(f"/images/{created['id']}/manifest")).json()
    assert manifest["blurhash"] == created["blurhash"]
    assert manifest["small"]["width"] == 640
    assert manifest["tiles"] is None  # 0.77 MP is under the tile threshold of this app
    expected = {"avif": "AVIF", "webp": "WEBP", "jpeg": "JPEG"}
    for fmt, entries in manifest["srcset"].items():
        assert [e["width"] for e in entries] == [320, 480, 640, 960, 1100]
        for entry in entries:
            got = await client.get(_relative(entry["src"]))
            assert got.status_code == 200, got.text
            assert got.headers["content-type"] == f"image/{fmt}"
            assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
            image = _decoded(got.content)
            assert image.format == expected[fmt]
            assert image.size == (entry["width"], round(entry["width"] * 700 / 1100))
            assert max(ImageStat.Stat(image.convert("RGB")).stddev) > 5
    small = await client.get(_relative(manifest["small"]["src"]))
    assert _decoded(small.content).format == "AVIF"
    full_640 = await client.get(_relative(manifest["srcset"]["avif"][2]["src"]))
    # Same width, lower quality: the small stage is the lighter file.
    assert len(small.content) < len(full_640.content)


async def test_etag_and_not_modified(client: httpx.AsyncClient) -> None:
    created = (await _upload(client, samples.jpeg(700, 500))).json()
    url = _relative(created["srcset"]["webp"][0]["src"])
    first = await client.get(url)
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    weak = await client.get(url, headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    other = await client.get(url, headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200


async def test_auto_format_is_negotiated(client: httpx.AsyncClient) -> None:
    created = (await _upload(client, samples.jpeg(700, 500))).json()
    facility = _facility(client)
    url = facility.signer.sign(f"/img/{created['id']}/320.auto", {"stage": "full"})
    for accept, media in [
        ("image/avif,image/webp,*/*", "image/avif"),
        ("image/webp,*/*", "image/webp"),
        ("*/*", "image/jpeg"),
    ]:
        got = await client.get(url, headers={"Accept": accept})
        assert got.status_code == 200
        assert got.headers["content-type"] == media
        assert "Accept" in [v.strip() for v in got.headers["vary"].split(",")]
        assert _decoded(got.content).width == 320


async def test_signatures_and_bad_variants(client: httpx.AsyncClient) -> None:
    created = (await _upload(client, samples.jpeg(700, 500))).json()
    image_id = created["id"]
    good = _relative(created["srcset"]["jpeg"][0]["src"])
    path, _, query = good.partition("?")
    params = dict(parse_qsl(query))
    tampered = [
        path.replace("/320.", "/480.") + "?" + query,
        f"{path}?stage=small&s={params['s']}",
        f"{path}?stage=full",
        f"{path}?stage=full&s={'B' if params['s'][0] == 'A' else 'A'}{params['s'][1:]}",
        f"/img/{image_id}/2000.jpeg?stage=full&s={params['s']}",
    ]
    for url in tampered:
        response = await client.get(url)
        assert response.status_code == 403, url
        assert response.json()["error"]["code"] == "bad_signature"
    signer = _facility(client).signer
    for name, code in [
        ("320.gif", "bad_format"),
        ("333.jpeg", "bad_width"),
        ("big.jpeg", "bad_variant"),
    ]:
        response = await client.get(signer.sign(f"/img/{image_id}/{name}", {"stage": "full"}))
        assert response.status_code == 422
        assert response.json()["error"]["code"] == code
    response = await client.get(signer.sign(f"/img/{image_id}/320.jpeg", {"stage": "huge"}))
    assert response.json()["error"]["code"] == "bad_stage"
    response = await client.get(signer.sign("/img/nosuchimage/320.jpeg", {"stage": "full"}))
    assert response.status_code == 404
    response = await client.get(f"{good}&stage=full")
    assert response.status_code == 422


async def test_concurrent_requests_render_once(client: httpx.AsyncClient) -> None:
    created = (await _upload(client, samples.jpeg(1600, 1000))).json()
    url = _relative(created["srcset"]["avif"][3]["src"])
    facility = _facility(client)
    before = facility.variants.renders
    responses = await asyncio.gather(*(client.get(url) for _ in range(6)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert facility.variants.renders == before + 1
    metrics = (await client.get("/metrics")).text
    assert 'kervan_image_renders_total{format="avif"}' in metrics
    assert 'kervan_image_ingests_total{outcome="stored"}' in metrics


@pytest.mark.parametrize(
    ("make_body", "status", "code"),
    [
        (lambda: samples.png_bomb(40_000, 40_000), 413, "image_too_large"),
        (lambda: b"%PDF-1.7 not an image", 422, "unsupported_image_format"),
        (lambda: samples.jpeg(300, 200)[:600], 422, "image_rejected"),
        (lambda: b"\xff\xd8\xff" + b"0" * 2_100_000, 413, "payload_too_large"),
    ],
    ids=["bomb", "pdf", "truncated", "oversized-body"],
)
async def test_bad_uploads_are_clear_4xx(
    client: httpx.AsyncClient, make_body: Callable[[], bytes], status: int, code: str
) -> None:
    response = await _upload(client, make_body())
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_upload_requires_alt_admin_and_a_known_content_type(
    client: httpx.AsyncClient,
) -> None:
    missing_alt = await _upload(client, samples.jpeg(50, 50), alt=None)
    assert missing_alt.status_code == 422
    assert missing_alt.json()["error"]["details"][0]["field"] == "body.alt"
    blank_alt = await _upload(client, samples.jpeg(50, 50), alt="   ")
    assert blank_alt.status_code == 422
    anonymous = await client.post("/admin/images", files={"file": ("a", b"x")}, data={"alt": "a"})
    assert anonymous.status_code == 401
    wrong_type = await client.post(
        "/admin/images", content=b"x", headers={**ADMIN, "Content-Type": "image/jpeg"}
    )
    assert wrong_type.status_code == 415


async def test_url_ingest_refuses_ssrf(client: httpx.AsyncClient) -> None:
    for url, code in [
        ("https://metadata.google.internal/computeMetadata/v1/", "source_not_allowed"),
        ("https://localhost/x.jpg", "source_not_allowed"),  # allowed name, loopback address
        ("http://images.test/x.jpg", "source_not_allowed"),  # http is not allowed
        ("https://[::1]/x.jpg", "source_not_allowed"),
    ]:
        response = await client.post("/admin/images", json={"url": url, "alt": "x"}, headers=ADMIN)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]["code"] == code
    missing = await client.post("/admin/images", json={"url": "https://a.b/"}, headers=ADMIN)
    assert missing.status_code == 422


async def test_url_ingest_from_an_allowed_source(client: httpx.AsyncClient) -> None:
    body = samples.jpeg(400, 300, seed=9)

    async def source(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    served: list[str] = []

    async def serve(host: str, port: int) -> list[IPAddress]:
        served.append(host)
        return [ipaddress.ip_address("93.184.216.34")]

    facility = _facility(client)
    fetcher = SafeFetcher(
        SourcePolicy.of(["images.test"]),
        FetchLimits(max_bytes=1_000_000, timeout_seconds=5, max_redirects=2),
        resolver=serve,
    )
    original = httpx.AsyncClient

    class _Pinned(httpx.AsyncClient):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(transport=httpx.MockTransport(source), **kwargs)

    facility.fetcher = fetcher
    httpx.AsyncClient = _Pinned  # type: ignore[misc]
    try:
        response = await client.post(
            "/admin/images",
            json={"url": "https://images.test/cat.jpg", "alt": "Cat"},
            headers=ADMIN,
        )
    finally:
        httpx.AsyncClient = original  # type: ignore[misc]
    assert response.status_code == 201, response.text
    assert (response.json()["width"], response.json()["alt"]) == (400, "Cat")
    assert served == ["images.test"]


async def test_iiif_level0_for_large_images(client: httpx.AsyncClient) -> None:
    large = (await _upload(client, samples.jpeg(1400, 1000))).json()
    assert large["tiles"]["iiif"] == f"http://testserver/iiif/{large['id']}/info.json"
    info = (await client.get(f"/iiif/{large['id']}/info.json")).json()
    assert info["id"] == f"http://testserver/iiif/{large['id']}"
    assert info["profile"] == "level0"
    tile = await client.get(f"/iiif/{large['id']}/0,0,512,512/512,512/0/default.jpg")
    assert tile.status_code == 200
    assert _decoded(tile.content).size == (512, 512)
    missing = await client.get(f"/iiif/{large['id']}/0,0,500,500/500,500/0/default.jpg")
    assert missing.status_code == 404
    small = (await _upload(client, samples.jpeg(300, 200))).json()
    assert (await client.get(f"/iiif/{small['id']}/info.json")).status_code == 404


async def test_snippet_and_demo_page(client: httpx.AsyncClient) -> None:
    js = await client.get("/static/progressive-image.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert "IntersectionObserver" in js.text and "requestIdleCallback" in js.text
    created = (await _upload(client, samples.jpeg(800, 600), alt='Quote " & <tag>')).json()
    page = await client.get(f"/images/{created['id']}/demo")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}" src="{asset_url("progressive-image.js")}">' in page.text
    assert 'width="800" height="600"' in page.text
    assert 'alt="Quote &quot; &amp; &lt;tag&gt;"' in page.text
    assert 'rel="preload" as="image"' in page.text and 'fetchpriority="high"' in page.text
