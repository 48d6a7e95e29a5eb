"""Caching at the edge: static files at immutable hashed URLs with strong ETags, revalidation
at the stable URLs, and ``Vary`` only where an answer really differs (public answers carry
``Access-Control-Allow-Origin: *`` and no ``Vary: Origin``; CORS answers for listed origins do)."""

from __future__ import annotations

from typing import Any

from service.static_assets import ASSETS, IMMUTABLE, asset, asset_url


async def test_static_files_hashed_immutable_and_stable_revalidated(
    make_client: Any, make_settings: Any
) -> None:
    async with make_client(make_settings()) as client:
        for name in ASSETS:
            found = asset(name)
            hashed = await client.get(asset_url(name), headers={"Origin": "https://a.example"})
            assert hashed.status_code == 200 and hashed.content == found.body
            assert hashed.headers["cache-control"] == IMMUTABLE
            etag = hashed.headers["etag"]
            assert etag.startswith('"') and not etag.startswith("W/")
            assert hashed.headers["access-control-allow-origin"] == "*"
            assert "vary" not in hashed.headers
            stable = await client.get(f"/static/{name}")
            assert stable.headers["etag"] == etag
            assert "immutable" not in stable.headers["cache-control"]
            again = await client.get(f"/static/{name}", headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b""
            # A hash of another release never existed: not found, not the current file.
            stem, _, ext = name.rpartition(".")
            assert (await client.get(f"/static/{stem}.{'0' * 12}.{ext}")).status_code == 404
        assert (await client.get("/static/nope.js")).status_code == 404


async def test_vary_origin_only_on_answers_that_depend_on_it(
    make_client: Any, make_settings: Any
) -> None:
    settings = make_settings(allowed_origins="https://app.example")
    async with make_client(settings) as client:
        listed = await client.get("/openapi.json", headers={"Origin": "https://app.example"})
        assert listed.headers["access-control-allow-origin"] == "https://app.example"
        assert "Origin" in listed.headers["vary"]
        public = await client.get(asset_url(ASSETS[0]), headers={"Origin": "https://app.example"})
        assert public.headers["access-control-allow-origin"] == "*"
        assert "vary" not in public.headers
