"""A refused CORS preflight is a 400 in the error envelope, naming what was refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from service.settings import Settings

SHOP = "https://shop.example"


@pytest.mark.parametrize(
    ("origin", "method", "headers", "refused"),
    [
        ("https://evil.example", "PUT", None, ["origin"]),
        (SHOP, "TRACE", None, ["method"]),
        (SHOP, "PUT", "x-evil", ["headers"]),
        ("https://evil.example", "TRACE", "x-evil", ["origin", "method", "headers"]),
    ],
)
async def test_refused_preflight_is_an_enveloped_400(
    make_settings: Callable[..., Settings],
    make_client: Any,
    origin: str,
    method: str,
    headers: str | None,
    refused: list[str],
) -> None:
    request = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        request["Access-Control-Request-Headers"] = headers
    async with make_client(make_settings(allowed_origins=SHOP)) as client:
        response = await client.options("/consent/someone", headers=request)
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/json")
        error = response.json()["error"]
        assert error["code"] == "cors_rejected"
        assert error["details"] == {"refused": refused}
        assert all(word in error["message"] for word in refused)
        if "origin" in refused:
            assert "access-control-allow-origin" not in response.headers
        assert "x-request-id" in response.headers  # still inside the request context

        allowed = await client.options(
            "/consent/someone", headers={"Origin": SHOP, "Access-Control-Request-Method": "PUT"}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == SHOP
