"""The RSGI floor: a bare RSGI app on granian answering every HTTP request with fixed bytes.

No framework, no bridge: one ``response_bytes`` per request, so its rate is what granian's RSGI
interface and uvloop alone cost on this machine (compare ``bare_asgi.py``). Served by
``bench/bench_http.py`` as ``granian --interface rsgi --loop uvloop --workers 1``::

    .venv/bin/granian --interface rsgi --loop uvloop --host 127.0.0.1 --port 8102 \\
        bench.baselines.bare_rsgi:app
"""

from __future__ import annotations

from typing import Any

BODY = b'{"status":"ok"}'
HEADERS = [("content-type", "application/json"), ("content-length", str(len(BODY)))]


async def app(scope: Any, protocol: Any) -> None:
    protocol.response_bytes(200, HEADERS, BODY)
