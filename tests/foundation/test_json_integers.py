"""JSON integers orjson cannot hold exactly reach the models as the exact numbers (orjson alone
turns them into floats, ``2**64`` into ``1.8446744073709552e19``), so bounds name the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.responses import json_response
from service.settings import Settings
from service.validation import parse_body, parse_json


class Counted(BaseModel):
    n: int = Field(ge=0, le=2**63 - 1)


async def echo(request: Request) -> Response:
    data = await parse_json(request)
    return json_response({"reprs": [repr(v) for v in data["v"]]})


async def counted(request: Request) -> Response:
    body = await parse_body(request, Counted)
    return json_response({"n": body.n})


def _install(client: Any) -> None:
    client.app.router.routes.extend(
        [Route("/echo", echo, methods=["POST"]), Route("/counted", counted, methods=["POST"])]
    )


@pytest.mark.parametrize(
    "literal",
    [
        str(2**64),
        str(2**64 - 1),
        str(-(2**63) - 1),
        "1" + "0" * 30,
        "-" + "9" * 19,
        "1e30",  # a float literal stays a float
        "12345678901234567890.5",
    ],
)
async def test_numbers_arrive_exactly(
    make_settings: Callable[..., Settings], make_client: Any, literal: str
) -> None:
    async with make_client(make_settings()) as client:
        _install(client)
        # A long digit run inside a string is no number at all.
        body = f'{{"v": [{literal}, 1], "s": "{"7" * 40}"}}'.encode()
        response = await client.post("/echo", content=body)
        assert response.status_code == 200, response.text
        exact = int(literal) if literal.lstrip("-").isdigit() else float(literal)
        assert response.json()["reprs"] == [repr(exact), "1"]


@pytest.mark.parametrize("literal", [str(2**63), str(2**64), "1" + "0" * 30])
async def test_bounds_see_the_real_integer(
    make_settings: Callable[..., Settings], make_client: Any, literal: str
) -> None:
    async with make_client(make_settings()) as client:
        _install(client)
        response = await client.post("/counted", content=f'{{"n": {literal}}}'.encode())
        assert response.status_code == 422, response.text
        [detail] = response.json()["error"]["details"]
        assert detail["field"] == "body.n"
        assert detail["type"] == "less_than_equal"
        ok = await client.post("/counted", content=f'{{"n": {2**63 - 1}}}'.encode())
        assert ok.json() == {"n": 2**63 - 1}
