"""Plain Starlette: one route returning fixed bytes, no middleware, on granian.

The framework's own cost over ``bare_asgi.py`` (routing, ``Request``/``Response`` objects), the
baseline the issue compares kervan's ``/health`` against. Served by ``bench/bench_http.py``::

    .venv/bin/granian --interface asgi --loop uvloop --host 127.0.0.1 --port 8102 \\
        bench.baselines.plain_starlette:app
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"status":"ok"}'


async def health(request: Request) -> Response:
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/health", health, methods=["GET"])])
