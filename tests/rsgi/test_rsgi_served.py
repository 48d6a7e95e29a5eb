"""``kervan serve`` under RSGI against ``kervan serve`` under ASGI: the same requests to both
real servers, the same answers (but what RSGI cannot carry: WebSocket close codes).

Both servers run with the same settings (allowed origin, trusted proxy, rate limit, the smallest
body limit, a one-second header timeout), so the answers differ only where the interface
differs; the connection tests of ``tests/operations/test_http_connections.py`` run against both.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from tests.operations.rawhttp import Connection, request
from tests.operations.served import Served
from tests.operations.test_http_connections import (
    HEADER_TIMEOUT,
    MAX_BODY,
    test_a_websocket_is_not_cut_by_the_header_timeout,
    test_every_early_refusal_ends_the_exchange_cleanly,
)
from tests.services import free_port

pytestmark = pytest.mark.slow

INTERFACES = ("asgi", "rsgi")
ORIGIN = "https://shop.example"
ADMIN = {"X-API-Key": "rsgi-admin-key"}
RULES = "/perf/speculation/dynamic?seg=en-d"
SETTINGS = {
    "allowed_origins": ORIGIN,
    "trusted_proxies": "127.0.0.1/32",
    "admin_api_key": ADMIN["X-API-Key"],
    "max_body_bytes": str(MAX_BODY),
    "http_header_timeout_seconds": HEADER_TIMEOUT,
    "ratelimit_default_policy": "public.ip",
    "ratelimit_policies": "public.ip=1000000/second burst 1000000",
}
#: Fields that differ between any two answers: when, and a request id made by the server.
VARYING = {"date", "x-request-id"}

# The connection tests of the operations suite, against both interfaces (``kervan`` below).
__all__ = [
    "test_a_websocket_is_not_cut_by_the_header_timeout",
    "test_every_early_refusal_ends_the_exchange_cleanly",
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    started = {
        name: Served(tmp_path_factory.mktemp(name), free_port(), server_interface=name, **SETTINGS)
        for name in INTERFACES
    }
    try:
        for server in started.values():
            server.wait_ready()
            # The rules are computed once after start-up; until then the general route answers.
            with httpx.Client(base_url=server.url, timeout=10) as client:
                assert client.get(RULES).status_code == 200
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(params=INTERFACES)
def kervan(request: pytest.FixtureRequest, servers: dict[str, Served]) -> Served:
    return servers[request.param]


def _comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = []
    for name, value in response.headers.multi_items():
        if name in VARYING:
            continue
        if name == "ratelimit":  # the remaining quota counts every request to that server
            value = re.sub(r"r=\d+;t=\d+", "r=N;t=N", value)
        headers.append((name, value))
    return response.status_code, headers, response.content


def _both(servers: dict[str, Served], method: str, path: str, **kwargs: Any) -> list[Any]:
    answers = []
    for name in INTERFACES:
        with httpx.Client(base_url=servers[name].url, timeout=10) as client:
            answers.append(_comparable(client.request(method, path, **kwargs)))
    return answers


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": ORIGIN},
        {"Origin": "https://other.example", "X-Request-ID": "abc-123"},
        {"X-Forwarded-For": "203.0.113.9", "Accept-Language": "de"},
    ],
    ids=["plain", "cors", "foreign-origin-own-id", "forwarded"],
)
@pytest.mark.parametrize("path", ["/health", RULES])
def test_the_hot_routes_answer_alike(
    servers: dict[str, Served], path: str, headers: dict[str, str]
) -> None:
    asgi, rsgi = _both(servers, "GET", path, headers=headers)
    assert asgi == rsgi, (asgi, rsgi)
    assert asgi[0] == 200
    if path == RULES:
        etag = dict(asgi[1])["etag"]
        not_modified = _both(servers, "GET", path, headers={**headers, "If-None-Match": etag})
        assert not_modified[0] == not_modified[1]
        assert not_modified[0][0] == 304


def test_the_general_routes_answer_alike(servers: dict[str, Served]) -> None:
    edges = {"seg": "tr-d", "replace": True, "edges": [{"from": "/a", "to": "/b", "count": 3}]}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/flows/edges", {"content": orjson.dumps(edges), "headers": ADMIN}),
        ("POST", "/flows/edges", {"content": b"{not json", "headers": ADMIN}),
        ("POST", "/flows/edges", {"content": b"{}"}),  # no key: 401
        ("POST", "/flows/events", {"content": b'{"x": "' + b"y" * 4000 + b'"}'}),  # 413
        ("GET", "/nowhere", {"headers": {"Origin": ORIGIN}}),
        ("DELETE", "/health", {}),
        ("OPTIONS", "/flows/events", {"headers": {"Origin": ORIGIN, **_PREFLIGHT}}),
        ("GET", "/perf/speculation/dynamic?seg=nope", {}),  # the fast route passes it on: 422
        ("GET", "/openapi.json", {}),  # a large answer
        ("HEAD", "/openapi.json", {}),
        ("HEAD", "/health", {}),
    ]
    statuses = []
    for method, path, kwargs in cases:
        asgi, rsgi = _both(servers, method, path, **kwargs)
        assert asgi == rsgi, (method, path)
        statuses.append(asgi[0])
    assert statuses == [200, 400, 401, 413, 404, 405, 200, 422, 200, 200, 200]


_PREFLIGHT = {"Access-Control-Request-Method": "POST"}


def test_a_streamed_answer_arrives_alike(servers: dict[str, Served]) -> None:
    period = "from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"
    for kind in ("jsonl", "csv"):
        asgi, rsgi = _both(
            servers, "GET", f"/admin/consent/export?{period}&format={kind}", headers=ADMIN
        )
        assert asgi == rsgi
        assert asgi[0] == 200


def test_keep_alive_carries_fast_and_general_requests(kervan: Served) -> None:
    conn = Connection(kervan.port)
    try:
        for raw in (
            request("GET", "/health"),
            request("GET", RULES),
            request("POST", "/flows/events", body=b"[]"),
            request("GET", "/nowhere"),
            request("GET", "/health"),
        ):
            conn.send(raw)
            answer = conn.answer()
            assert not answer.closes and answer.status in (200, 400, 404, 422), answer
    finally:
        conn.close()


def test_the_client_address_is_the_forwarded_one_from_a_trusted_proxy(
    servers: dict[str, Served],
) -> None:
    forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.50"}
    for name in INTERFACES:
        for path in ("/health", RULES, "/nowhere"):
            headers = {**forwarded, "X-Request-ID": f"xff-{name}-{path.count('/')}{len(path)}"}
            with httpx.Client(base_url=servers[name].url, timeout=10) as client:
                client.get(path, headers=headers)
    _wait_for_log(servers, "xff-")
    seen = {
        (record["request_id"], record["client_ip"], record["route"])
        for server in servers.values()
        for record in server.records()
        if record.get("logger") == "kervan.access" and record["request_id"].startswith("xff-")
    }
    by_interface = {
        name: {(ip, route) for rid, ip, route in seen if rid.startswith(f"xff-{name}-")}
        for name in INTERFACES
    }
    expected = {
        ("203.0.113.50", "/health"),
        ("203.0.113.50", "/perf/speculation/dynamic"),
        ("203.0.113.50", "<unmatched>"),
    }
    assert by_interface == {"asgi": expected, "rsgi": expected}


def _wait_for_log(servers: dict[str, Served], marker: str, count: int = 6) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = sum(
            1
            for server in servers.values()
            for record in server.records()
            if str(record.get("request_id", "")).startswith(marker)
            and record.get("logger") == "kervan.access"
        )
        if found >= count:
            return
        time.sleep(0.1)


async def _session(url: str, frames: list[Any]) -> tuple[list[dict[str, Any]], int | None]:
    """Frames sent in turn; every frame received until the server closes; the close code."""
    received: list[dict[str, Any]] = []
    async with websockets.connect(url + "/ws/support", open_timeout=10) as socket:
        for frame in frames:
            await socket.send(frame if isinstance(frame, str) else orjson.dumps(frame).decode())
        try:
            while True:
                received.append(orjson.loads(await asyncio.wait_for(socket.recv(), 10)))
        except websockets.ConnectionClosed:
            pass
        return received, socket.close_code


async def test_a_websocket_session_over_both_interfaces(servers: dict[str, Served]) -> None:
    results = {}
    for name in INTERFACES:
        url = servers[name].url.replace("http://", "ws://")
        customer = {"type": "hello", "role": "customer", "name": "Ada", "language": "en"}
        async with websockets.connect(url + "/ws/support", open_timeout=10) as socket:
            await socket.send(orjson.dumps(customer).decode())
            kinds = [orjson.loads(await socket.recv())["type"]]
            await socket.send("not json")
            await socket.send(orjson.dumps({"type": "ping"}).decode())
            while "pong" not in kinds:
                kinds.append(orjson.loads(await asyncio.wait_for(socket.recv(), 10))["type"])
        # An admin with no session: told why in a frame, then closed.
        refused = {"type": "hello", "role": "admin", "token": "x" * 43}
        frames, code = await _session(url, [refused])
        results[name] = (kinds, [f["type"] for f in frames], frames[0].get("code"), code)
    asgi, rsgi = results["asgi"], results["rsgi"]
    assert asgi[0] == rsgi[0] and asgi[0][0] == "welcome" and "error" in asgi[0]
    assert asgi[1:3] == rsgi[1:3] == (["error"], "forbidden")
    # granian's RSGI closes with an empty close frame: the code never reaches the client, the
    # error frame before it says why.
    assert (asgi[3], rsgi[3]) == (4003, 1005)


def test_the_lifespan_starts_and_stops_the_runtime(tmp_path: Path) -> None:
    server = Served(tmp_path, free_port(), server_interface="rsgi")
    try:
        server.wait_ready()
        assert httpx.get(server.url + "/ready", timeout=10).status_code == 200
        os.killpg(server.proc.pid, signal.SIGTERM)
        assert server.proc.wait(30) == 0
    finally:
        server.stop()
    messages = [record["msg"] for record in server.records()]
    assert "kervan started" in messages
    # The runtime's close ran: the queue worker said it stopped.
    assert any("stopped" in message for message in messages), messages[-10:]
