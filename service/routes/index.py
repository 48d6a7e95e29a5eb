"""``GET /``: what this service is and where to go next, instead of a bare 404.

JSON by default (``curl``, scripts, monitors); a small HTML page when the client's ``Accept``
prefers ``text/html`` (a browser opening the address ``kervan serve`` printed).
"""

from __future__ import annotations

import html

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from service.endpoint import api
from service.middleware.security import csp_nonce
from service.responses import json_response
from service.version import TITLE, VERSION

LINKS: dict[str, str] = {
    "docs": "/docs",
    "openapi": "/openapi.json",
    "health": "/health",
    "ready": "/ready",
    "metrics": "/metrics",
}
_LABELS = {
    "docs": "API documentation",
    "openapi": "OpenAPI 3.1 document",
    "health": "Liveness",
    "ready": "Readiness: database, Redis, worker",
    "metrics": "Prometheus metrics (allowed networks or token)",
}
_HEADERS = {"Vary": "Accept", "Cache-Control": "no-cache"}


class IndexLinks(BaseModel):
    docs: str
    openapi: str
    health: str
    ready: str
    metrics: str


class IndexOut(BaseModel):
    name: str
    version: str
    links: IndexLinks


def _quality(accept: str, media_type: str) -> float:
    """The ``q`` that ``accept`` gives ``media_type``: the most specific matching range wins."""
    main = media_type.partition("/")[0]
    specificity, quality = -1, 0.0
    for item in accept.split(","):
        media_range, *params = (part.strip() for part in item.split(";"))
        media_range = media_range.lower()
        if media_range == media_type:
            rank = 2
        elif media_range == f"{main}/*":
            rank = 1
        elif media_range == "*/*":
            rank = 0
        else:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        if rank > specificity:
            specificity, quality = rank, q
    return quality


def prefers_html(accept: str) -> bool:
    """True when ``accept`` ranks ``text/html`` above ``application/json`` (a tie is JSON)."""
    return _quality(accept, "text/html") > _quality(accept, "application/json")


def _page(nonce: str) -> str:
    items = "".join(
        f'<li><a href="{html.escape(path)}"><code>{html.escape(path)}</code></a> '
        f"{html.escape(_LABELS[name])}</li>"
        for name, path in LINKS.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{TITLE}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="{nonce}">body{{font:15px system-ui,sans-serif;margin:2rem;max-width:40rem}}
li{{margin:.3rem 0}}code{{font-weight:600}}</style></head>
<body><h1>{TITLE} {html.escape(VERSION)}</h1>
<p>An engagement backend: speculation rules, consent, WhatsApp, images, rate limits, jobs.</p>
<ul>{items}</ul></body></html>"""


@api("Service index: name, version and links", response=IndexOut, tags=["operations"])
async def index(request: Request) -> Response:
    if prefers_html(request.headers.get("accept", "")):
        return HTMLResponse(_page(csp_nonce(request.scope)), headers=_HEADERS)
    body = IndexOut(name=TITLE, version=VERSION, links=IndexLinks(**LINKS))
    return json_response(body.model_dump(), headers=_HEADERS)


routes: list[BaseRoute] = [Route("/", index, methods=["GET"])]
