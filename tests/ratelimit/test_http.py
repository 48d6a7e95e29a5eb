"""HTTP integration: admin endpoints on the real app, decorator and middleware on a small app."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.clock import ManualClock
from core.ratelimit import Catalog
from service.access_log import AccessLog
from service.app import KervanApp
from service.audit import list_audit
from service.backends.redis import create_redis_client
from service.edge import Edge
from service.ratelimit import (
    RateLimiter,
    by_api_key,
    by_client_ip,
    by_phone,
    rate_limited,
)
from service.ratelimit.keyfuncs import api_key_digest, normalize_phone
from service.ratelimit.memory import MemoryGcraStore
from service.ratelimit.redis_store import RedisGcraStore
from service.responses import json_response
from service.routes import ROUTE_MODULES
from service.settings import Settings
from service.validation import parse_json

ADMIN = {"Authorization": "Bearer test-admin-key"}
MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


async def test_admin_lists_and_lifts_lockouts_with_audit(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    settings = make_settings(
        ratelimit_lockouts="otp=2 failures in 1 minute lock 15 minutes, 1 hour"
    )
    clock = ManualClock()
    async with make_client(settings, clock=clock) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        limiter: RateLimiter = runtime.ratelimiter
        assert limiter.kind == "memory"
        for _ in range(2):
            await limiter.lockouts.failure("otp", "+905321234567")

        listed = await client.get("/admin/lockouts", headers=ADMIN)
        assert listed.status_code == 200
        (item,) = listed.json()["items"]
        assert item["rule"] == "otp" and item["key"] == "+905321234567"
        assert item["retry_after"] == 900
        assert "RateLimit" in listed.headers and "RateLimit-Policy" in listed.headers

        assert (await client.get("/admin/lockouts")).status_code == 401
        bad = await client.post(
            "/admin/lockouts/lift", json={"rule": "nope", "key": "x"}, headers=ADMIN
        )
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_failed"
        empty = await client.post("/admin/lockouts/lift", json={"rule": "otp"}, headers=ADMIN)
        assert empty.status_code == 422

        lift = {"rule": "otp", "key": "+905321234567"}
        lifted = await client.post("/admin/lockouts/lift", json=lift, headers=ADMIN)
        assert lifted.status_code == 200 and lifted.json()["lifted"] is True
        again = await client.post("/admin/lockouts/lift", json=lift, headers=ADMIN)
        assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
        assert (await client.get("/admin/lockouts", headers=ADMIN)).json()["items"] == []

        async with runtime.db.connect() as conn:
            rows = await list_audit(conn, subject="lockout:otp:+905321234567")
        assert [row["action"] for row in rows] == ["lockout.unlocked", "lockout.locked"]
        assert rows[0]["actor"] == "api-key" and rows[1]["actor"] == "system"

        policies = (await client.get("/admin/ratelimit/policies", headers=ADMIN)).json()
        names = {p["name"]: p for p in policies["policies"]}
        assert names["otp.send"]["failure_mode"] == "closed"
        assert policies["lockouts"][0]["name"] == "otp"


async def test_lift_documents_the_lockout_rules_in_force(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    """An unknown rule is refused (422): the document names the rules this app knows, the
    configured ones included, so a schema-valid lift is never refused for its rule."""
    settings = make_settings(ratelimit_lockouts="pin=3 failures in 1 minute lock 5 minutes")
    async with make_client(settings) as client:
        document = (await client.get("/openapi.json")).json()
    lift = document["paths"]["/admin/lockouts/lift"]["post"]
    ref = lift["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    rule = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]["rule"]
    assert rule["enum"] == ["login", "otp", "pin"]
    assert not any(key.startswith("x-") for key in rule)
    assert {"200", "401", "403", "404", "422", "429"} <= set(lift["responses"])


async def test_admin_policy_refuses_with_429_envelope_and_headers(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    # The app-wide per-IP policy is switched off so only the route's own policy speaks.
    settings = make_settings(
        ratelimit_policies="admin=2/minute burst 2", ratelimit_default_policy=""
    )
    async with make_client(settings, clock=ManualClock()) as client:
        answers = [await client.get("/admin/lockouts", headers=ADMIN) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.headers["Retry-After"] == "30"
    assert refused.headers["RateLimit-Policy"] == '"admin";q=2;w=60'
    assert refused.headers["RateLimit"] == '"admin";r=0;t=60'
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"] == {"policies": ["admin"], "retry_after": 30}
    assert answers[0].headers["RateLimit"] == '"admin";r=1;t=30'


def small_app(limiter: RateLimiter, default_policy: str = "t.tight") -> Starlette:
    @rate_limited(("t.slow", by_phone("phone")), ("t.odd", by_api_key))
    async def otp(request: Request) -> Response:
        body = await parse_json(request)  # the key function's read must not eat the body
        return json_response({"phone": body["phone"]})

    app = KervanApp(
        routes=[Route("/otp", otp, methods=["POST"]), Route("/health", otp, methods=["POST"])]
    )
    runtime = SimpleNamespace(
        ratelimiter=limiter,
        settings=SimpleNamespace(ratelimit_default_policy=default_policy),
        fast_routes={},
    )
    app.state.runtime = runtime
    app.edge = Edge(hsts=False, allowed_origins=[], trusted_proxies=[], access_log=AccessLog())
    app.edge.bind(runtime)  # type: ignore[arg-type]
    app.state.settings = SimpleNamespace(max_body_bytes=1_000_000)
    return app


@pytest.fixture
async def small_client(catalog: Catalog) -> AsyncIterator[httpx.AsyncClient]:
    limiter = RateLimiter(catalog, MemoryGcraStore(ManualClock(), 1000))
    transport = httpx.ASGITransport(app=small_app(limiter), client=("198.51.100.9", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def test_middleware_and_decorator_headers(small_client: httpx.AsyncClient) -> None:
    answer = await small_client.post(
        "/otp", json={"phone": "+90 532 123 45 67"}, headers={"X-API-Key": "k1"}
    )
    assert answer.status_code == 200 and answer.json() == {"phone": "+90 532 123 45 67"}
    # The route's policies per phone and per API key, then (a second field line, which HTTP
    # combines into one list) the middleware's policy per IP.
    assert answer.headers["RateLimit"] == '"t.slow";r=19;t=1, "t.odd";r=3;t=2, "t.tight";r=2;t=1'
    assert answer.headers["RateLimit-Policy"] == (
        '"t.slow";q=20;w=12, "t.odd";q=4;w=6, "t.tight";q=3;w=1'
    )


async def test_middleware_refuses_per_client_ip(small_client: httpx.AsyncClient) -> None:
    codes = [(await small_client.post("/otp", json={"phone": "x"})).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    exempt = await small_client.post("/health", json={"phone": "x"})
    assert exempt.status_code == 200 and "RateLimit" not in exempt.headers


async def test_decorator_refuses_per_phone_whatever_the_formatting(catalog: Catalog) -> None:
    limiter = RateLimiter(catalog, MemoryGcraStore(ManualClock(), 1000))
    app = small_app(limiter, default_policy="")
    statuses = []
    for i in range(21):
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{i}", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            phone = "+905321234567" if i % 2 else "0090 (532) 123-45-67"
            answer = await client.post("/otp", json={"phone": phone})
            statuses.append(answer.status_code)
    assert statuses == [200] * 20 + [429]
    assert answer.json()["error"]["details"]["policies"] == ["t.slow"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+90 (532) 123-45-67", "+905321234567"),
        ("0049 30 1234567", "+49301234567"),
        ("905321234567", "+905321234567"),
        ("+0123456789", None),
        ("12", None),
        ("call me", None),
    ],
)
def test_normalize_phone(raw: str, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


async def test_key_functions_never_store_raw_credentials() -> None:
    scope: dict[str, Any] = {
        "type": "http",
        "headers": [(b"authorization", b"Bearer secret-token")],
        "client": ("192.0.2.1", 1),
        "state": {},
    }
    request = Request(scope)
    digest = await by_api_key(request)
    assert digest == api_key_digest("secret-token") and "secret" not in (digest or "")
    assert await by_client_ip(request) == "192.0.2.1"
    assert await by_api_key(Request({**scope, "headers": []})) is None


async def test_backend_down_closed_policy_answers_503_open_policy_passes(
    catalog: Catalog,
) -> None:
    # A real client to a port nothing listens on: the genuine connection-refused path.
    dead = create_redis_client("redis://127.0.0.1:1/0", max_connections=2, timeout=0.5)
    limiter = RateLimiter(catalog, RedisGcraStore(dead, "dead"))

    @rate_limited(("t.closed", by_client_ip))
    async def login(request: Request) -> Response:
        return json_response({"ok": True})

    app = small_app(limiter, default_policy="t.slow")  # the middleware's policy fails open
    app.router.routes.append(Route("/login", login, methods=["POST"]))
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 1234))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            opened = await client.post("/otp", json={"phone": "+905321234567"})
            closed = await client.post("/login", headers={"Accept-Language": "en-GB,en;q=0.8"})
    finally:
        await dead.aclose()
    # Open policies (middleware per IP, route per phone and API key) let it through, unadvertised.
    assert opened.status_code == 200 and "RateLimit" not in opened.headers
    assert closed.status_code == 503
    assert closed.headers["Retry-After"] == "1"
    assert "RateLimit" not in closed.headers
    assert closed.json()["error"] == {
        "code": "rate_limiter_unavailable",
        "message": "The service is busy right now; please try again in a few seconds.",
        "details": {"policies": ["t.closed"]},
    }


@pytest.mark.parametrize(
    ("accept_language", "start"),
    [
        (None, "Çok fazla istek"),
        ("de-AT,de;q=0.9", "Zu viele Anfragen"),
        ("en-US", "Too many requests"),
        ("fr-FR", "Too many requests"),
    ],
)
async def test_refusal_message_in_the_users_language(
    small_client: httpx.AsyncClient, accept_language: str | None, start: str
) -> None:
    headers = {"Accept-Language": accept_language} if accept_language else {}
    for _ in range(3):
        await small_client.post("/otp", json={"phone": "x"})
    refused = await small_client.post("/otp", json={"phone": "x"}, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith(start)


async def test_app_wide_policy_is_mounted_and_spares_probes(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    settings = make_settings(
        ratelimit_policies="public.ip=3/minute burst 3", ratelimit_default_policy="public.ip"
    )
    async with make_client(settings, clock=ManualClock()) as client:
        answers = [await client.get("/openapi.json") for _ in range(4)]
        probes = [await client.get("/health") for _ in range(10)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["RateLimit-Policy"] == '"public.ip";q=3;w=60'
    assert answers[3].json()["error"]["code"] == "rate_limited"
    assert all(p.status_code == 200 for p in probes)


def test_every_admin_route_is_paced_by_the_admin_policy() -> None:
    """Admin routes run costly reads and writes (exports, replays, imports): a leaked or
    scripted key must meet the ``admin`` policy on every one of them, not only some."""
    checked, unpaced = 0, []
    for name in ROUTE_MODULES:
        for route in importlib.import_module(name).routes:
            if not isinstance(route, Route):
                continue
            spec = getattr(route.endpoint, "__kervan_api__", None)
            if spec is None or not spec.admin:
                continue
            checked += 1
            if "admin" not in getattr(route.endpoint, "__kervan_rate_limits__", ()):
                unpaced.append(route.path)
    assert checked >= 30 and unpaced == []
