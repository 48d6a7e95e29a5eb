"""The ASGI bridge under a real granian RSGI server in the test's loop: the scopes it builds are
granian's ASGI scopes, bodies and disconnects reach the app, the fast routes never cross it, and
a failed start-up ends the worker naming the cause."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from granian.constants import Interfaces
from granian.server.embed import Server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from service.app import create_app
from service.db import Database
from service.db.migrate import migrate
from service.rsgi import KervanRsgi
from service.rsgi.bridge import AsgiBridge
from service.settings import Settings
from tests.services import free_port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@asynccontextmanager
async def embedded(target: Any, interface: Interfaces) -> AsyncIterator[str]:
    """``target`` served by granian on a free port in this loop; yields its base URL."""
    port = free_port()
    server = Server(target, address="127.0.0.1", port=port, interface=interface, log_enabled=False)
    task = asyncio.create_task(server.serve())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not _listening(port):
            if task.done():
                task.result()
                raise AssertionError("granian stopped before serving")
            assert loop.time() < deadline, "granian did not listen"
            await asyncio.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


def _recorder() -> tuple[Callable[[Scope, Receive, Send], Any], list[Scope]]:
    """An ASGI app that records each scope and answers with the body it read."""
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.append(dict(scope))
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "hi"})
            await send({"type": "websocket.close", "code": 1000})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app, seen


def _normal(scope: Scope) -> dict[str, Any]:
    found = {k: v for k, v in scope.items() if k not in ("extensions", "raw_path", "state")}
    found["client"] = scope["client"][0]  # the port is the client's own
    found["server"] = scope["server"][0]
    return found


async def test_the_bridge_builds_granians_asgi_scopes() -> None:
    asgi_app, asgi_seen = _recorder()
    rsgi_app, rsgi_seen = _recorder()
    headers = [("X-Dup", "1"), ("X-Dup", "2"), ("Origin", "https://a.example")]
    async with (
        embedded(asgi_app, Interfaces.ASGI) as asgi_at,
        embedded(KervanRsgi(rsgi_app), Interfaces.RSGI) as rsgi_at,
    ):
        for at in (asgi_at, rsgi_at):
            async with httpx.AsyncClient(base_url=f"http://{at}") as client:
                answer = await client.post(
                    "/a%20b/c?x=1&y=%20z", content=b"x" * 100_000, headers=headers
                )
                assert answer.content == b"x" * 100_000
            async with websockets.connect(
                f"ws://{at}/ws?q=1",
                subprotocols=["one", "two"],  # type: ignore[list-item]
            ) as ws:
                assert await ws.recv() == "hi"
    assert len(asgi_seen) == len(rsgi_seen) == 2
    for ours, theirs in zip(rsgi_seen, asgi_seen, strict=True):
        theirs_normal, ours_normal = _normal(theirs), _normal(ours)
        # The port differs between the two servers, the handshake key between two handshakes.
        mine = (b"host", b"sec-websocket-key")
        theirs_normal["headers"] = [h for h in theirs["headers"] if h[0] not in mine]
        ours_normal["headers"] = [h for h in ours["headers"] if h[0] not in mine]
        assert ours_normal == theirs_normal
        assert ours["raw_path"] == theirs["raw_path"]
        assert ours["state"] == theirs["state"] == {}
    assert rsgi_seen[0]["path"] == "/a b/c" and rsgi_seen[0]["raw_path"] == b"/a%20b/c"
    assert rsgi_seen[1]["subprotocols"] == ["one", "two"]


async def test_a_client_that_leaves_a_stream_is_noticed() -> None:
    ended = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * 1000
                await asyncio.sleep(0.01)
        finally:
            ended.set()

    async def stream(request: Request) -> Response:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(routes=[Route("/stream", stream)])
    async with embedded(KervanRsgi(app), Interfaces.RSGI) as at:
        host, port = at.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await reader.read(5000)
        writer.close()
        await asyncio.wait_for(ended.wait(), 10)


async def test_websocket_frames_and_a_refused_handshake() -> None:
    async def echo(websocket: WebSocket) -> None:
        if websocket.query_params.get("refuse"):
            await websocket.close(code=1008)
            return
        await websocket.accept()
        text = await websocket.receive_text()
        data = await websocket.receive_bytes()
        await websocket.send_text(text.upper())
        await websocket.send_bytes(data[::-1])
        await websocket.send_json({"error": "bye"})
        await websocket.close(code=4001, reason="bye")

    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    async with embedded(KervanRsgi(app), Interfaces.RSGI) as at:
        async with websockets.connect(f"ws://{at}/ws") as ws:
            await ws.send("abc")
            await ws.send(b"\x01\x02")
            assert await ws.recv() == "ABC"
            assert await ws.recv() == b"\x02\x01"
            assert await ws.recv() == '{"error":"bye"}'  # the explanation precedes the close
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1005  # granian's RSGI sends no code (see bridge.py)
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"ws://{at}/ws?refuse=1"):
                pass
        assert refused.value.response.status_code == 403


async def test_a_close_reaches_the_client_while_the_app_still_holds_its_websocket() -> None:
    """granian sends the close frame when its transport object is dropped: an exchange that
    outlives the handler (here held on purpose; in kervan's session a reference cycle, until
    the collector runs) must not hold the close back."""
    held: list[WebSocket] = []

    async def refuse(websocket: WebSocket) -> None:
        held.append(websocket)
        await websocket.accept()
        await websocket.send_json({"error": "forbidden"})
        await websocket.close(code=4003)

    app = Starlette(routes=[WebSocketRoute("/ws", refuse)])
    async with (
        embedded(KervanRsgi(app), Interfaces.RSGI) as at,
        websockets.connect(f"ws://{at}/ws") as ws,
    ):
        assert await ws.recv() == '{"error":"forbidden"}'
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
    assert len(held) == 1


async def test_the_fast_routes_never_cross_the_bridge(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(allowed_origins=["https://shop.example"])
    db = Database(settings.database_url)
    await migrate(db)
    await db.dispose()
    app = create_app(settings)
    bridged: list[str] = []
    http = AsgiBridge.http

    async def counted(self: AsgiBridge, scope: Any, protocol: Any, app: Any = None) -> None:
        bridged.append(scope.path)
        await http(self, scope, protocol, app)

    monkeypatch.setattr(AsgiBridge, "http", counted)
    target = KervanRsgi(app, app.edge)
    async with (
        embedded(target, Interfaces.RSGI) as at,
        httpx.AsyncClient(base_url=f"http://{at}") as client,
    ):
        health = await client.get("/health", headers={"Origin": "https://shop.example"})
        ready = await client.get("/ready")
    assert health.status_code == ready.status_code == 200
    assert health.headers["access-control-allow-origin"] == "https://shop.example"
    assert health.headers["x-content-type-options"] == "nosniff"
    assert bridged == ["/ready"]
    assert target.stopping is not None
    await asyncio.wait_for(target.stopping, 30)
    assert getattr(app.state, "runtime", None) is not None  # it ran, and was closed
    assert app.edge.runtime is None


def test_a_failed_start_up_ends_the_worker_naming_the_cause(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("the database is not there")
        yield  # pragma: no cover

    async def home(request: Request) -> Response:
        return JSONResponse({})

    target = KervanRsgi(Starlette(routes=[Route("/", home)], lifespan=lifespan))
    # granian's logger, as a worker process has it (an embedded server may have turned it off).
    granian_log = logging.getLogger("_granian")
    monkeypatch.setattr(granian_log, "disabled", False)
    monkeypatch.setattr(granian_log, "level", logging.INFO)
    granian_log.addHandler(caplog.handler)
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(SystemExit) as ended:
            target.__rsgi_init__(loop)
    finally:
        loop.close()
        granian_log.removeHandler(caplog.handler)
    assert ended.value.code == 1
    text = caplog.text
    assert "ASGI lifespan startup failed" in text and "the database is not there" in text
