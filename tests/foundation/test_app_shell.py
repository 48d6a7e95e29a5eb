"""The service shell: health, readiness, metrics guard, errors, middleware, OpenAPI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.requests import Request
from starlette.routing import Route

from service.settings import Settings


async def test_health_and_request_id(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    async with make_client(make_settings()) as client:
        r = await client.get("/health")
        assert r.status_code == 200
        assert r.json() == {"status": "ok"}
        generated = r.headers["x-request-id"]
        assert len(generated) == 32
        r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        # An id that could inject into logs or headers is replaced, not echoed.
        r = await client.get("/health", headers={"X-Request-ID": "bad id x"})
        assert r.headers["x-request-id"] != "bad id x"


async def test_ready_reports_components(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    async with make_client(make_settings()) as client:
        r = await client.get("/ready")
        assert r.status_code == 200, r.text
        assert r.json()["components"]["database"] == "ok"


async def test_ready_names_unreachable_redis(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:1/0", redis_timeout_seconds=0.2)
    async with make_client(settings) as client:
        r = await client.get("/ready")
        assert r.status_code == 503
        body = r.json()["error"]
        assert body["code"] == "not_ready"
        assert "redis" in body["message"]
        assert body["details"]["components"]["database"] == "ok"
        # What does not need Redis keeps serving.
        assert (await client.get("/health")).status_code == 200


async def test_ready_with_real_redis(
    make_settings: Callable[..., Settings], make_client: Any, redis_url: str
) -> None:
    async with make_client(make_settings(redis_url=redis_url)) as client:
        r = await client.get("/ready")
        assert r.status_code == 200, r.text
        assert r.json()["components"]["redis"] == "ok"


async def test_metrics_guard(make_settings: Callable[..., Settings], make_client: Any) -> None:
    # The test client connects from 127.0.0.1, inside the default allow-list.
    async with make_client(make_settings()) as client:
        await client.get("/health")
        r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert 'kervan_http_requests_total{method="GET",route="/health",status="200"}' in r.text
        assert "kervan_http_request_duration_seconds_bucket" in r.text
    closed = make_settings(metrics_allow="10.9.9.0/24", metrics_token="s3cret-token")
    async with make_client(closed) as client:
        r = await client.get("/metrics", headers={"Origin": "http://127.0.0.1"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "forbidden"
        r = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 403
        r = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert r.status_code == 200


async def test_error_envelope_for_404_405_and_500(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    async def boom(request: Request) -> Any:
        raise RuntimeError("secret internals")

    async with make_client(make_settings()) as client:
        r = await client.get("/nope")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
        r = await client.post("/health")
        assert r.status_code == 405
        assert r.json()["error"]["code"] == "method_not_allowed"
        client.app.router.routes.append(Route("/boom", boom))  # type: ignore[attr-defined]
        r = await client.get("/boom", headers={"X-Request-ID": "req-500"})
        assert r.status_code == 500
        assert r.json() == {
            "error": {"code": "internal_error", "message": "internal server error", "details": None}
        }
        assert "secret" not in r.text
        assert r.headers["x-request-id"] == "req-500"
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_security_headers_and_csp_nonce(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    async with make_client(make_settings(env="development")) as client:
        r = await client.get("/health")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert "strict-transport-security" not in r.headers
        page1 = await client.get("/docs")
        page2 = await client.get("/docs")
        csp1, csp2 = (
            page1.headers["content-security-policy"],
            page2.headers["content-security-policy"],
        )
        nonce1 = csp1.split("'nonce-")[1].split("'")[0]
        assert f'nonce="{nonce1}"' in page1.text
        assert csp1 != csp2  # a fresh nonce per response
    prod = make_settings(env="production", cookie_secret="x" * 40)
    async with make_client(prod) as client:
        r = await client.get("/health")
        assert "max-age" in r.headers["strict-transport-security"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://shop.example", True),
        ("https://shop.example.evil.com", False),  # prefix match must not pass
        ("https://evil.com", False),
        ("http://shop.example", False),  # scheme is part of the origin
    ],
)
async def test_cors_matches_origins_exactly(
    make_settings: Callable[..., Settings], make_client: Any, origin: str, allowed: bool
) -> None:
    settings = make_settings(allowed_origins="https://shop.example,https://admin.example")
    async with make_client(settings) as client:
        r = await client.options(
            "/health",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
        )
        assert (r.headers.get("access-control-allow-origin") == origin) is allowed
        r = await client.get("/health", headers={"Origin": origin})
        assert (r.headers.get("access-control-allow-origin") == origin) is allowed


async def test_openapi_document(make_settings: Callable[..., Settings], make_client: Any) -> None:
    async with make_client(make_settings()) as client:
        doc = (await client.get("/openapi.json")).json()
        assert doc["openapi"] == "3.1.0"
        assert "/health" in doc["paths"]
        ready = doc["paths"]["/ready"]["get"]
        assert "503" in ready["responses"]
        assert ready["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ReadyOut"
        )
        assert "ReadyOut" in doc["components"]["schemas"]


async def test_a_stuck_component_does_not_hang_shutdown(
    make_settings: Callable[..., Settings],
) -> None:
    import asyncio

    from core.clock import SYSTEM_CLOCK
    from service.runtime import build_runtime

    stopped: list[str] = []

    class Stuck:
        async def start(self) -> None:
            pass

        async def stop(self) -> None:
            await asyncio.Event().wait()

    class Polite:
        async def start(self) -> None:
            pass

        async def stop(self) -> None:
            stopped.append("polite")

    runtime = build_runtime(make_settings(), SYSTEM_CLOCK)
    runtime.add_component(Polite())
    runtime.add_component(Stuck())
    await runtime.start()
    await runtime.stop(timeout=0.05)
    assert stopped == ["polite"]
    await runtime.close()


async def test_ready_in_embedded_mode_checks_the_in_process_worker(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    async with make_client(make_settings()) as client:
        import asyncio

        body: dict[str, Any] = {}
        # The in-process worker beats as soon as it starts; give it a moment.
        for _ in range(50):
            r = await client.get("/ready")
            body = r.json()
            if r.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert body["components"]["worker"] == "ok"
        assert isinstance(body["info"]["circuit_breakers"], dict)


async def test_ready_fails_when_no_worker_beats(
    make_settings: Callable[..., Settings], make_client: Any
) -> None:
    from service.heartbeat import WorkerHeartbeat

    async with make_client(make_settings()) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        beats = [c for c in runtime.components if isinstance(c, WorkerHeartbeat)]
        assert beats, "the embedded default runs a worker heartbeat"
        for beat in beats:
            await beat.stop()
        r = await client.get("/ready")
        assert r.status_code == 503
        assert "worker" in r.json()["error"]["message"]
        assert r.json()["error"]["details"]["components"]["worker"] == "no worker heartbeat"


def test_openapi_writes_typed_path_parameters_the_openapi_way() -> None:
    from starlette.responses import PlainTextResponse

    from service.endpoint import api
    from service.openapi import build_openapi

    @api("One thing")
    async def thing(request: Request) -> Any:
        return PlainTextResponse("x")

    doc = build_openapi([Route("/things/{thing_id:int}/{name}", thing)], title="t", version="1")
    assert list(doc["paths"]) == ["/things/{thing_id}/{name}"]
    params = doc["paths"]["/things/{thing_id}/{name}"]["get"]["parameters"]
    assert [(p["name"], p["schema"]["type"]) for p in params] == [
        ("thing_id", "integer"),
        ("name", "string"),
    ]
