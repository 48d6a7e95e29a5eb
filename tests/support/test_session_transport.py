"""A support session's frames on the server's own receive/send, with Starlette's semantics."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from service.edge import TRANSPORT_KEY
from service.support.session import SupportSession


def session(receive: Any, send: Any) -> SupportSession:
    scope = {
        "type": "websocket",
        "path": "/ws/support",
        "headers": [],
        TRANSPORT_KEY: (receive, send),
    }

    async def unused_receive() -> Any:
        raise AssertionError("Starlette's receive is not used once accepted")

    async def unused_send(message: Any) -> None:
        raise AssertionError("Starlette's send is not used once accepted")

    ws = WebSocket(scope, unused_receive, unused_send)
    ws.client_state = ws.application_state = WebSocketState.CONNECTED
    desk: Any = SimpleNamespace(settings=SimpleNamespace(support_max_frame_bytes=16_384))
    return SupportSession(desk, ws, authenticate_admin=None)  # type: ignore[arg-type]


async def test_frames_go_to_the_servers_own_send_and_come_from_its_receive() -> None:
    sent: list[Any] = []
    incoming = [{"type": "websocket.receive", "text": "a"}, {"type": "websocket.disconnect"}]

    async def receive() -> Any:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    s = session(receive, send)
    await s.send_text("hello")
    assert sent == [{"type": "websocket.send", "text": "hello"}]
    assert await s._receive() == "a"
    assert await s._receive() is None
    # The disconnect is the WebSocket's state, as if Starlette had read it.
    assert s.ws.client_state == WebSocketState.DISCONNECTED


async def test_a_gone_socket_is_a_disconnect_as_with_starlette() -> None:
    async def receive() -> Any:
        raise AssertionError("not read")

    async def send(message: Any) -> None:
        raise ConnectionResetError("gone")

    s = session(receive, send)
    with pytest.raises(WebSocketDisconnect) as caught:
        await s.send_text("hello")
    assert caught.value.code == 1006
    assert s.ws.application_state == WebSocketState.DISCONNECTED
