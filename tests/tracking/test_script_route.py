"""``GET /t/{site_key}.js``: the same bytes for every live site, long caching with a
content-hashed strong ETag, 404 for an unknown, malformed or deleted key."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import update

from service.db import Database
from service.db.tables.tracking import sites
from service.settings import Settings
from service.tracking.sites import Site, create_site

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SCRIPT = "service/static/kervan-track.js"

MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


async def _site(settings: Settings, name: str) -> Site:
    db = Database(settings.database_url)
    try:
        async with db.begin() as conn:
            return await create_site(
                conn,
                name=name,
                domains=["example.com"],
                currency="TRY",
                time_zone="Europe/Istanbul",
                now=NOW,
            )
    finally:
        await db.dispose()


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    return error


async def test_the_script_is_served_with_long_caching_and_a_content_etag(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    settings = make_settings(tracking_script_max_age_seconds=3600)
    async with make_client(settings) as client:
        site = await _site(settings, "A")
        other = await _site(settings, "B")
        answer = await client.get(f"/t/{site.public_key}.js")
        assert answer.status_code == 200
        with open(SCRIPT, "rb") as file:
            shipped = file.read()
        assert answer.content == shipped
        assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
        assert answer.headers["cache-control"] == (
            "public, max-age=3600, stale-while-revalidate=604800"
        )
        etag = answer.headers["etag"]
        assert etag == f'"{hashlib.sha256(shipped).hexdigest()[:32]}"'  # strong: no W/
        # One file for every site: a cache keeps one copy.
        assert (await client.get(f"/t/{other.public_key}.js")).headers["etag"] == etag

        for sent in (etag, f"W/{etag}", f'"other", {etag}'):
            revalidated = await client.get(
                f"/t/{site.public_key}.js", headers={"If-None-Match": sent}
            )
            assert revalidated.status_code == 304
            assert revalidated.content == b""
            assert revalidated.headers["etag"] == etag
            assert "max-age=3600" in revalidated.headers["cache-control"]
        stale = await client.get(f"/t/{site.public_key}.js", headers={"If-None-Match": '"old"'})
        assert stale.status_code == 200 and stale.content == shipped


async def test_unknown_malformed_and_deleted_keys_are_404(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    settings = make_settings()
    async with make_client(settings) as client:
        site = await _site(settings, "A")
        unknown = await client.get("/t/st_AAAAAAAAAAAAAAAAAAAAAAAA.js")
        assert unknown.status_code == 404
        assert _error(unknown)["code"] == "unknown_site"
        assert unknown.headers["cache-control"] == "no-store"
        for malformed in ("/t/nope.js", "/t/st_a.b.js", "/t/st_short.js", "/t/.js"):
            refused = await client.get(malformed)
            assert refused.status_code == 404, malformed
            _error(refused)

        # A revalidation of a deleted site's script does not keep it alive with a 304.
        etag = (await client.get(f"/t/{site.public_key}.js")).headers["etag"]
        db = Database(settings.database_url)
        try:
            async with db.begin() as conn:
                await conn.execute(
                    update(sites).where(sites.c.id == site.id).values(deleted_at=NOW)
                )
        finally:
            await db.dispose()
        gone = await client.get(f"/t/{site.public_key}.js", headers={"If-None-Match": etag})
        assert gone.status_code == 404
        assert _error(gone)["code"] == "unknown_site"


async def test_only_get_and_head(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    settings = make_settings()
    async with make_client(settings) as client:
        site = await _site(settings, "A")
        head = await client.head(f"/t/{site.public_key}.js")
        assert head.status_code == 200 and head.headers["etag"]
        posted = await client.post(f"/t/{site.public_key}.js")
        assert posted.status_code == 405
        assert set(posted.headers["allow"].split(", ")) == {"GET", "HEAD"}
