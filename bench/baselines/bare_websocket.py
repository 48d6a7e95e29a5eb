"""The floor of a WebSocket's memory: a bare ASGI app on granian that accepts WebSockets and
reads until they close.

No framework and no protocol: what one open connection costs granian and uvloop alone, beside
which ``bench/bench_support.py`` shows kervan's and python-socketio's memory per idle
connection. ``GET /health`` answers 200 for the readiness check::

    .venv/bin/granian --interface asgi --loop uvloop --workers 1 --host 127.0.0.1 --port 8202 \\
        bench.baselines.bare_websocket:app
"""

from __future__ import annotations

from typing import Any

BODY = b'{"status":"ok"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(BODY)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": BODY})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass
