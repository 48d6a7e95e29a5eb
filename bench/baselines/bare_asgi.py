"""The floor: a bare ASGI app on granian answering every HTTP request with fixed bytes.

No framework, no middleware: one ``http.response.start`` and one ``http.response.body`` per
request, so its rate is what granian and uvloop alone cost on this machine. Served by
``bench/bench_http.py`` as ``granian --interface asgi --loop uvloop --workers 1``::

    .venv/bin/granian --interface asgi --loop uvloop --host 127.0.0.1 --port 8101 \\
        bench.baselines.bare_asgi:app
"""

from __future__ import annotations

from typing import Any

BODY = b'{"status":"ok"}'
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ],
}
END = {"type": "http.response.body", "body": BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(START)
    await send(END)
