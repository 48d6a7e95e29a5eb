"""CORS of ``/t/sync`` is per site: a page of one of a site's domains may send and read,
any other origin may not; the preflight (fetch with JSON or an Idempotency-Key) likewise."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from starlette.applications import Starlette

from service.errors import EXCEPTION_HANDLERS
from service.routes import tracking_ingest
from service.settings import Settings
from tests.tracking.ingest_support import NOW, ORIGIN, Harness, batch, harness, page_view


def _preflight_headers(
    origin: str, method: str = "POST", headers: str = "content-type"
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def _check_preflights(client: httpx.AsyncClient) -> None:
    allowed = await client.options(
        "/t/sync", headers=_preflight_headers(ORIGIN, headers="content-type, idempotency-key")
    )
    assert allowed.status_code == 204, allowed.text
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert set(allowed.headers["access-control-allow-headers"].split(", ")) >= {
        "Content-Type",
        "Idempotency-Key",
    }
    assert "POST" in allowed.headers["access-control-allow-methods"]
    for origin in ("https://evil.net", "https://example.com.evil.net", "http://example.com"):
        refused = await client.options("/t/sync", headers=_preflight_headers(origin))
        assert refused.status_code == 403, origin
        assert "access-control-allow-origin" not in refused.headers
    wrong_method = await client.options("/t/sync", headers=_preflight_headers(ORIGIN, "DELETE"))
    assert wrong_method.status_code == 400
    assert wrong_method.json()["error"]["code"] == "cors_rejected"
    wrong_header = await client.options(
        "/t/sync", headers=_preflight_headers(ORIGIN, headers="x-secret")
    )
    assert wrong_header.status_code == 400


def _route_app(h: Harness) -> Starlette:
    """The route module's routes alone, on the running app's runtime."""
    app = Starlette(routes=tracking_ingest.routes, exception_handlers=EXCEPTION_HANDLERS)
    running = h.client.app  # type: ignore[attr-defined]
    app.state.runtime = running.state.runtime
    app.state.settings = h.settings
    return app


async def test_the_preflight_answers_the_sites_origins_only(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        transport = httpx.ASGITransport(app=_route_app(h), client=("127.0.0.1", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            await _check_preflights(c)
            plain = await c.options("/t/sync")
            assert plain.status_code == 204 and plain.headers["allow"] == "OPTIONS, POST"


async def test_the_preflight_through_the_whole_app(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        await _check_preflights(h.client)


async def test_answers_name_the_sites_origin_and_expose_the_quota(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        answer = await h.send(batch(h.site, [page_view(NOW)]), origin="https://www.example.com")
        assert answer.headers["access-control-allow-origin"] == "https://www.example.com"
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert "Origin" in answer.headers["vary"]
