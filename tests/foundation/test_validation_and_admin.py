"""Request validation (422 listing every field, 400 on malformed JSON, 413 on size) and the
interim admin guard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.auth import require_admin
from service.responses import json_response
from service.settings import Settings
from service.validation import parse_body, parse_query


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=10)
    count: int = Field(ge=0)
    tags: list[str] = []


class Page(BaseModel):
    limit: int = Field(default=10, ge=1, le=100)


async def create_item(request: Request) -> Response:
    item = await parse_body(request, Item)
    page = parse_query(request, Page)
    return json_response({"item": item, "limit": page.limit}, status=201)


async def admin_only(request: Request) -> Response:
    principal = await require_admin(request)
    return json_response({"admin": principal.id})


def _install(client: Any) -> None:
    client.app.router.routes.extend(
        [Route("/items", create_item, methods=["POST"]), Route("/admin/x", admin_only)]
    )


async def test_validation_lists_every_failing_field(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    async with make_client(make_settings(max_body_bytes=2048)) as client:
        _install(client)
        ok = await client.post("/items?limit=5", json={"name": "a", "count": 1})
        assert ok.status_code == 201
        assert ok.json() == {"item": {"name": "a", "count": 1, "tags": []}, "limit": 5}

        bad = await client.post("/items?limit=0", json={"name": "", "count": -1, "tags": [1]})
        assert bad.status_code == 422
        error = bad.json()["error"]
        assert error["code"] == "validation_failed"
        fields = {d["field"] for d in error["details"]}
        assert fields == {"body.name", "body.count", "body.tags.0"}

        bad_query = await client.post("/items?limit=500", json={"name": "a", "count": 1})
        assert bad_query.status_code == 422
        assert [d["field"] for d in bad_query.json()["error"]["details"]] == ["query.limit"]

        malformed = await client.post(
            "/items", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400
        assert malformed.json()["error"]["code"] == "malformed_json"

        wrong_shape = await client.post("/items", json=[1, 2])
        assert wrong_shape.status_code == 422

        huge = await client.post("/items", json={"name": "a", "count": 1, "tags": ["x" * 4000]})
        assert huge.status_code == 413
        assert huge.json()["error"]["code"] == "payload_too_large"


async def test_admin_guard(make_settings: Callable[..., Settings], make_client: Any) -> None:
    async with make_client(make_settings(admin_api_key="k" * 24)) as client:
        _install(client)
        assert (await client.get("/admin/x")).status_code == 401
        wrong = await client.get("/admin/x", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "unauthorized"
        assert "bearer" in wrong.headers["www-authenticate"].lower()
        good = await client.get("/admin/x", headers={"Authorization": "Bearer " + "k" * 24})
        assert good.status_code == 200
        alt = await client.get("/admin/x", headers={"X-API-Key": "k" * 24})
        assert alt.status_code == 200
    async with make_client(make_settings(admin_api_key=None)) as client:
        _install(client)
        disabled = await client.get("/admin/x", headers={"X-API-Key": "anything"})
        assert disabled.status_code == 403
        assert disabled.json()["error"]["code"] == "admin_disabled"
