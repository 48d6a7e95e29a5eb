"""The OpenAPI 3.1 document and a self-contained docs page (no third-party scripts)."""

from __future__ import annotations

import html
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from service.middleware.security import csp_nonce
from service.openapi import build_openapi
from service.ratelimit.http import DEFAULT_EXEMPT
from service.responses import json_response
from service.version import TITLE, VERSION


def openapi_document(request: Request) -> dict[str, Any]:
    cached: dict[str, Any] | None = getattr(request.app.state, "openapi", None)
    if cached is None:
        cached = build_openapi(
            request.app.routes,
            title=TITLE,
            version=VERSION,
            app_limit_exempt=DEFAULT_EXEMPT,
            app=request.app,
        )
        # Values only a started app knows (runtime enums) are missing before the lifespan ran;
        # such a document is served but not kept.
        if getattr(request.app.state, "runtime", None) is not None:
            request.app.state.openapi = cached
    return cached


async def openapi_json(request: Request) -> Response:
    return json_response(openapi_document(request))


async def docs_page(request: Request) -> Response:
    doc = openapi_document(request)
    nonce = csp_nonce(request.scope)
    rows = []
    for path, methods in sorted(doc["paths"].items()):
        for method, op in methods.items():
            params = ", ".join(p["name"] for p in op.get("parameters", []))
            statuses = ", ".join(op.get("responses", {}))
            rows.append(
                f"<tr><td class=m>{html.escape(method.upper())}</td>"
                f"<td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td>"
                f"<td>{html.escape(params)}</td><td>{html.escape(statuses)}</td></tr>"
            )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{TITLE} API</title>
<style nonce="{nonce}">body{{font:14px system-ui,sans-serif;margin:2rem}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:.3rem .6rem;
text-align:left}}.m{{font-weight:600}}</style></head>
<body><h1>{TITLE} API {VERSION}</h1>
<p>Machine-readable document: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).
The live-support WebSocket <code>/ws/support</code> is described in
<a href="/asyncapi.json">/asyncapi.json</a> (AsyncAPI 3).</p>
<table><tr><th>Method</th><th>Path</th><th>Summary</th><th>Parameters</th><th>Responses</th></tr>
{"".join(rows)}</table></body></html>"""
    return HTMLResponse(page)


routes: list[BaseRoute] = [
    Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
    Route("/docs", docs_page, methods=["GET"], include_in_schema=False),
]
