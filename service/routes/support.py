"""``/ws/support`` (live support) and its AsyncAPI document; the desk does the work."""

from __future__ import annotations

import contextlib

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from service.auth import admin_from_connection
from service.logging import get_logger
from service.responses import json_response
from service.rtc.relay import SignalRelay
from service.runtime import get_runtime
from service.support.asyncapi import asyncapi_document
from service.support.desk import SupportDesk
from service.support.drain import SupportDrain
from service.support.protocol import error_frame
from service.support.session import AdminIdentity, SupportSession

CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
log = get_logger("kervan.support")


async def asyncapi_json(request: Request) -> Response:
    return json_response(asyncapi_document(get_runtime(request).settings))


async def authenticate_admin(websocket: WebSocket, token: str | None) -> AdminIdentity | None:
    """An admin session (cookie, or its token in ``hello``) or the API key (machine clients)."""
    principal = await admin_from_connection(websocket, token)
    if principal is None:
        return None
    return AdminIdentity(
        id=str(principal.admin_id) if principal.admin_id is not None else principal.id,
        name=principal.name or principal.id,
        language=principal.language or "tr",
    )


def _origin_allowed(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        # Not a browser (browsers always send Origin on a WebSocket): nothing to forge.
        return True
    settings = get_runtime(websocket).settings
    return origin == settings.public_origin.rstrip("/") or origin in settings.allowed_origins


async def support_socket(websocket: WebSocket) -> None:
    if not _origin_allowed(websocket):
        # A page on another site must not use a visitor's (or an admin's) cookies here.
        await websocket.accept()
        with contextlib.suppress(Exception):
            await websocket.send_text(
                error_frame(
                    "origin_not_allowed", "this origin may not open the support socket"
                ).decode()
            )
            await websocket.close(CLOSE_POLICY, "origin not allowed")
        return
    runtime = get_runtime(websocket)
    drain = runtime.facility(SupportDrain)
    session = SupportSession(
        runtime.facility(SupportDesk), websocket, authenticate_admin, runtime.facility(SignalRelay)
    )
    if not drain.enter(session):
        # This process is stopping: the client goes to another one straight away.
        await drain.refuse(websocket)
        return
    try:
        await session.run()
    except Exception:
        # A bug, not the client's fault: say so before closing rather than drop the socket.
        log.exception("support connection failed")
        with contextlib.suppress(Exception):
            await websocket.send_text(
                error_frame("internal_error", "the server failed; reconnect and resume").decode()
            )
            await websocket.close(CLOSE_INTERNAL, "internal error")
    finally:
        drain.leave(session)


routes: list[BaseRoute] = [
    WebSocketRoute("/ws/support", support_socket),
    Route("/asyncapi.json", asyncapi_json, methods=["GET"], include_in_schema=False),
]
