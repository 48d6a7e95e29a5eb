"""``GET /``: a small index (JSON by default, HTML for browsers) instead of a 404."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from service.routes.index import prefers_html
from service.settings import Settings
from service.version import VERSION

LINKS = {
    "docs": "/docs",
    "openapi": "/openapi.json",
    "health": "/health",
    "ready": "/ready",
    "metrics": "/metrics",
}
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


async def test_index_answers_json_by_default(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    async with make_client(make_settings()) as client:
        for headers in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
            r = await client.get("/", headers=headers)
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("application/json")
            assert r.json() == {"name": "kervan", "version": VERSION, "links": LINKS}
            assert "accept" in r.headers["vary"].lower()
            assert (
                r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
            )
        for path in LINKS.values():  # every link leads somewhere
            assert (await client.get(path)).status_code in (200, 403), path


async def test_index_serves_html_to_browsers(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    async with make_client(make_settings()) as client:
        r = await client.get("/", headers={"Accept": BROWSER})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        page = r.text
        for path in LINKS.values():
            assert f'href="{path}"' in page
        assert "<script" not in page
        csp = r.headers["content-security-policy"]
        nonce = re.search(r"style-src 'nonce-([^']+)'", csp)
        assert nonce is not None and f'<style nonce="{nonce.group(1)}">' in page
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        head = await client.head("/", headers={"Accept": BROWSER})
        assert head.status_code == 200


async def test_index_is_documented(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    async with make_client(make_settings()) as client:
        doc = (await client.get("/openapi.json")).json()
        op = doc["paths"]["/"]["get"]
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        name = schema["$ref"].rsplit("/", 1)[-1]
        component = doc["components"]["schemas"][name]
        assert set(component["required"]) == {"name", "version", "links"}


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("text/html", True),
        (BROWSER, True),
        ("text/*", True),
        ("application/json, text/html", False),  # a tie is JSON
        ("application/json;q=0.5, text/html", True),
        ("text/html;q=0.2, application/json;q=0.9", False),
        ("text/html;q=0, */*", False),
        ("text/html;q=bogus, application/json;q=0.1", False),
        ("TEXT/HTML", True),
    ],
)
def test_accept_negotiation(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html


def test_the_reported_version_is_the_package_version() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == VERSION
