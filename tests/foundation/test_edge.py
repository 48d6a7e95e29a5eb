"""The edge: fast and general answers carry the same protections; request ids; the access log."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import orjson
import pytest

from service import access_log as access_log_module
from service.access_log import AccessLog
from service.edge import RequestIds
from service.metrics import REGISTRY
from service.settings import Settings
from service.speculation.cache import SpeculationCache

ORIGIN = "https://shop.example"
RULES = "/perf/speculation/dynamic"
EDGES = {
    "seg": "en-d",
    "replace": True,
    "edges": [
        {"from": "/", "to": "/en/projects", "count": 50},
        {"from": "/en/projects", "to": "/en/projects/a", "count": 30},
        {"from": "/", "to": "/en/about", "count": 5},
    ],
}
ADMIN = {"X-API-Key": "test-admin-key"}
#: Fields that differ between any two answers, whatever path served them.
PER_ANSWER = {"x-request-id", "ratelimit", "date", "server"}


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        allowed_origins=[ORIGIN],
        ratelimit_default_policy="public.ip",
        ratelimit_policies="public.ip=1000/second burst 1000",
    )
    async with make_client(settings) as c:
        assert (await c.post("/flows/edges", json=EDGES, headers=ADMIN)).status_code == 200
        cache: SpeculationCache = c.app.state.runtime.facility(SpeculationCache)  # type: ignore[attr-defined]
        await cache.refresh_all()
        yield c


def _fields(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in PER_ANSWER}


async def test_fast_and_general_rules_answers_carry_the_same_fields(
    client: httpx.AsyncClient,
) -> None:
    mode = client.app.state.settings.speculation_mode  # type: ignore[attr-defined]
    fast = await client.get(RULES, params={"seg": "en-d"}, headers={"Origin": ORIGIN})
    # An explicit mode is not the fast path's plain form: the router answers it.
    general = await client.get(
        RULES, params={"seg": "en-d", "mode": mode}, headers={"Origin": ORIGIN}
    )
    assert fast.status_code == general.status_code == 200
    assert fast.content == general.content
    assert _fields(fast) == _fields(general)
    assert fast.headers["access-control-allow-origin"] == ORIGIN
    assert fast.headers["vary"] == "Origin"
    assert fast.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert fast.headers["ratelimit-policy"] == '"public.ip";q=1000;w=1'
    assert re.fullmatch(r'"public\.ip";r=\d+;t=\d+', fast.headers["ratelimit"])


async def test_fast_rules_not_modified_and_counted(client: httpx.AsyncClient) -> None:
    def served(status: str) -> float:
        labels = {"seg": "en-d", "status": status}
        return REGISTRY.get_sample_value("kervan_speculation_responses_total", labels) or 0.0

    first = await client.get(RULES, params={"seg": "en-d"})
    before = served("304"), served("200")
    again = await client.get(
        RULES, params={"seg": "en-d"}, headers={"If-None-Match": f"W/{first.headers['etag']}"}
    )
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert "content-type" not in again.headers
    assert (served("304"), served("200")) == (before[0] + 1, before[1])


async def test_requests_the_fast_path_does_not_own_take_the_general_route(
    client: httpx.AsyncClient,
) -> None:
    unknown = await client.get(RULES, params={"seg": "xx-d"})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "validation_failed"
    assert "x-request-id" in unknown.headers and unknown.headers["vary"] == "Origin"
    # A configured segment without a held answer is computed by the general route.
    cold = await client.get(RULES, params={"seg": "de-m"})
    assert cold.status_code == 200 and "etag" in cold.headers


async def test_disallowed_origins_get_no_cors_grant(client: httpx.AsyncClient) -> None:
    for path in (f"{RULES}?seg=en-d", "/health", "/openapi.json"):
        answer = await client.get(path, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in answer.headers, path
        assert answer.headers["vary"].endswith("Origin"), path


async def test_the_per_ip_policy_refuses_fast_answers_too(
    make_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    settings = make_settings(
        ratelimit_default_policy="public.ip", ratelimit_policies="public.ip=3/minute burst 3"
    )
    async with make_client(settings) as c:
        await c.post("/flows/edges", json=EDGES, headers=ADMIN)  # the first of the 3
        await c.app.state.runtime.facility(SpeculationCache).refresh_all()  # type: ignore[attr-defined]
        answers = [await c.get(RULES, params={"seg": "en-d"}) for _ in range(3)]
        probe = await c.get("/health")  # exempt: probes always answer
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"]["code"] == "rate_limited"
    assert int(answers[2].headers["retry-after"]) > 0
    assert answers[2].headers["x-frame-options"] == "DENY"
    assert probe.status_code == 200 and "ratelimit" not in probe.headers


def test_request_ids_are_unique_and_32_hex() -> None:
    ids = RequestIds()
    made = [ids.next() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in made)
    assert RequestIds().next()[:16] != made[0][:16]  # another process, another prefix


def _record(log: AccessLog, n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):
        log.record("GET", f"/p/{i}", "/p/{i}", 200, 0.001, "127.0.0.1", f"r{i}")


async def _drain(read_fd: int, into: list[bytes]) -> None:
    os.set_blocking(read_fd, False)
    while True:
        try:
            chunk = os.read(read_fd, 1 << 16)
        except BlockingIOError:
            await asyncio.sleep(0.01)
            continue
        if not chunk:
            return
        into.append(chunk)


async def test_access_lines_are_json_and_none_is_lost_on_close() -> None:
    read_fd, write_fd = os.pipe()
    log = AccessLog(write_fd)
    log.direct = True
    received: list[bytes] = []
    reader = asyncio.create_task(_drain(read_fd, received))
    _record(log, 2500)  # crosses the flush size, and leaves a tail in the buffer
    await asyncio.to_thread(log.close)
    os.close(write_fd)
    await asyncio.wait_for(reader, 10)
    os.close(read_fd)
    lines = [orjson.loads(line) for line in b"".join(received).splitlines()]
    assert [line["request_id"] for line in lines] == [f"r{i}" for i in range(2500)]
    first = lines[0]
    assert first["logger"] == "kervan.access" and first["level"] == "info"
    assert first["msg"] == "GET /p/0 200"
    assert {"ts", "method", "path", "route", "status", "duration_ms", "client_ip"} <= set(first)


async def test_a_stalled_log_stream_drops_and_says_so_instead_of_growing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(access_log_module, "MAX_BACKLOG_BYTES", 10_000)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, True)
    log = AccessLog(write_fd)
    log.direct = True
    dropped_before = REGISTRY.get_sample_value("kervan_access_log_dropped_total") or 0.0
    # Nobody reads the pipe: once its buffer is full the writer thread blocks.
    for round_ in range(40):
        _record(log, 500, start=round_ * 500)
        log.flush()
        await asyncio.sleep(0.01)
    dropped = (REGISTRY.get_sample_value("kervan_access_log_dropped_total") or 0.0) - dropped_before
    assert dropped > 0
    # The reader catches up: every kept line and the notice arrive.
    received: list[bytes] = []
    reader = asyncio.create_task(_drain(read_fd, received))
    await asyncio.to_thread(log.close)
    os.close(write_fd)
    await asyncio.wait_for(reader, 10)
    os.close(read_fd)
    lines = [orjson.loads(line) for line in b"".join(received).splitlines()]
    notices = [line for line in lines if line["level"] == "warning"]
    assert sum(n["dropped"] for n in notices) == dropped
    kept = [line for line in lines if line["level"] == "info"]
    assert len(kept) + dropped == 40 * 500


async def test_console_logging_keeps_access_lines_in_logging(
    caplog: pytest.LogCaptureFixture, client: httpx.AsyncClient
) -> None:
    # Under pytest the root logger is not kervan's JSON handler: lines go through logging.
    edge: Any = client.app.edge  # type: ignore[attr-defined]
    assert edge.access_log.direct is False
    with caplog.at_level("INFO", logger="kervan.access"):
        await client.get("/health", headers={"X-Request-ID": "probe-1"})
    [record] = [r for r in caplog.records if r.name == "kervan.access"]
    assert record.getMessage() == "GET /health 200"
    assert record.__dict__["route"] == "/health"


def test_http_stats_export_what_prometheus_client_would() -> None:
    """Plain counters on the request path, the same exposition as prometheus_client's."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from service.metrics import HTTP_LATENCY_BUCKETS, HttpStats

    stats, registry = HttpStats(), CollectorRegistry()
    registry.register(stats)
    reference = CollectorRegistry()
    count = Counter("kervan_http_requests", "", ["method", "route", "status"], registry=reference)
    latency = Histogram(
        "kervan_http_request_duration_seconds",
        "",
        ["method", "route"],
        buckets=HTTP_LATENCY_BUCKETS,
        registry=reference,
    )
    samples = [0.0001, 0.0005, 0.0005001, 0.001, 0.02, 0.7, 5.0, 9.0]
    for i, elapsed in enumerate(samples):
        route, status = ("/a", 200) if i % 3 else ("/b", 404)
        stats.observe("GET", route, status, elapsed)
        count.labels("GET", route, str(status)).inc()
        latency.labels("GET", route).observe(elapsed)

    def values(text: bytes) -> dict[str, float]:
        found = {}
        for line in text.decode().splitlines():
            if line.startswith("kervan_http") and "_created" not in line:
                name, _, value = line.rpartition(" ")
                found[name] = float(value)
        return found

    ours, theirs = values(generate_latest(registry)), values(generate_latest(reference))
    theirs = {k: v for k, v in theirs.items() if not k.startswith("kervan_http_requests_in")}
    ours.pop("kervan_http_requests_in_flight", None)
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value), key


async def _small_app_client(routes: list[Any]) -> httpx.AsyncClient:
    from service.app import KervanApp
    from service.edge import Edge
    from service.errors import EXCEPTION_HANDLERS

    app = KervanApp(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
    app.edge = Edge(
        hsts=False, allowed_origins=[ORIGIN], trusted_proxies=[], access_log=AccessLog()
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_a_public_answer_keeps_its_star_and_varies_by_nothing() -> None:
    from starlette.responses import Response
    from starlette.routing import Route

    async def public(request: Any) -> Response:
        return Response(b"{}", headers={"Access-Control-Allow-Origin": "*"})

    async with await _small_app_client([Route("/tile", public)]) as c:
        answer = await c.get("/tile", headers={"Origin": ORIGIN})
        other = await c.get("/tile")
    # The same answer for every origin: one copy in a shared cache, no Vary: Origin.
    assert answer.headers.get_list("access-control-allow-origin") == ["*"]
    assert other.headers.get_list("access-control-allow-origin") == ["*"]
    assert "vary" not in answer.headers and "vary" not in other.headers


async def test_an_unhandled_error_is_logged_once_and_labelled_with_its_route(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from starlette.routing import Route

    async def boom(request: Any) -> Any:
        raise RuntimeError("boom")

    def served(route: str) -> float:
        labels = {"method": "GET", "route": route, "status": "500"}
        return REGISTRY.get_sample_value("kervan_http_requests_total", labels) or 0.0

    before = served("/boom")
    with caplog.at_level("ERROR"):
        async with await _small_app_client([Route("/boom", boom)]) as c:
            answer = await c.get("/boom")
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error"
    assert "x-request-id" in answer.headers
    assert served("/boom") == before + 1
    assert len([r for r in caplog.records if r.exc_info and "boom" in str(r.exc_info[1])]) == 1


def test_access_chunks_are_written_in_whole_lines_of_at_most_pipe_buf() -> None:
    from service.access_log import _line_aligned

    lines = [b"x" * n + b"\n" for n in (10, 5000, 3000, 100, 4095, 0, 7)]
    chunk = b"".join(lines)
    pieces = _line_aligned(chunk, 4096)
    assert b"".join(pieces) == chunk
    for piece in pieces:
        assert piece.endswith(b"\n")
        assert len(piece) <= 4096 or piece.count(b"\n") == 1  # only a lone long line exceeds
