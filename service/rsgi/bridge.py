"""A generic ASGI application served over granian's RSGI protocol objects.

HTTP: the request body is read through the protocol object (whole for a small declared length,
else chunk by chunk), ``http.disconnect`` comes once the body was read and the client left (or
at once after the answer, as granian's ASGI does); the answer goes out with ``response_bytes``
when it is one body message, as a stream (``response_stream``) when it has more, and as a file
(``response_file``) for ``http.response.pathsend``.

WebSocket: ``websocket.connect`` first, then the peer's frames; ``accept``, ``send`` and
``close`` map onto RSGI's ``accept()``, ``send_str``/``send_bytes`` and ``close(status)``.
granian 2.8 closes an accepted RSGI WebSocket with an empty close frame: the close code and reason
an app gives never reach the client (it sees 1005), so an app that explains a close must send its
explanation as a frame before closing (kervan's ``/ws/support`` sends an ``error`` frame first;
``send`` returns once the frame is written, so it always precedes the close). That close frame
goes when the transport object is dropped, so the exchange lets go of it as it closes. A close
before ``accept`` refuses the handshake with 403, as granian's ASGI does. RSGI's ``accept`` takes
no subprotocol or headers, and a frame from the peer carries no close code:
``websocket.disconnect`` says 1005 for a close frame and 1006 for a lost connection.
"""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.types import ASGIApp, Message, Scope

from service.fast_routes import Header
from service.rsgi.scope import asgi_scope

#: A declared body up to this size is read in one call (no per-chunk round trips); a larger or
#: chunked one is handed over chunk by chunk, so the app may stop reading it.
WHOLE_BODY_LIMIT = 64 * 1024
DISCONNECT: Message = {"type": "http.disconnect"}
EMPTY_END: Message = {"type": "http.request", "body": b"", "more_body": False}


def str_headers(headers: Any) -> list[tuple[str, str]]:
    """ASGI header pairs as RSGI takes them (bytes are latin-1 in HTTP)."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


def _declared_length(headers: Any) -> int | None:
    if "transfer-encoding" in headers:
        return None
    text = headers.get("content-length")
    if text is None:
        return 0
    text = text.strip()
    return int(text) if text.isdigit() else None


class HttpExchange:
    """One HTTP request's ``receive`` and ``send`` over an RSGI protocol object."""

    __slots__ = (
        "_chunks",
        "_done",
        "_gone",
        "_headers",
        "_length",
        "_protocol",
        "_read",
        "_reading",
        "_status",
        "_stream",
        "scope",
    )

    def __init__(self, scope: Scope, protocol: Any, length: int | None) -> None:
        self.scope = scope
        self._protocol = protocol
        self._length = length
        self._read = 0
        #: None: the body is still to be read; True/False: it ended (whole or broken).
        self._reading: bool | None = None
        self._chunks: Any = None
        self._gone = False
        self._status: int | None = None
        self._headers: list[tuple[str, str]] = []
        self._stream: Any = None
        self._done = False

    # --- receive -----------------------------------------------------------------------------
    async def receive(self) -> Message:
        if self._reading is None:
            return await self._body()
        if self._gone or self._done:
            return DISCONNECT
        await self._protocol.client_disconnect()
        self._gone = True
        return DISCONNECT

    async def _body(self) -> Message:
        protocol = self._protocol
        if self._chunks is None and self._length is not None and self._length <= WHOLE_BODY_LIMIT:
            # granian hands the body over once: a read that fails or is cancelled (a drain
            # that gave up) leaves none to read, which the app then learns as a disconnect.
            self._reading = False
            try:
                body = await protocol()
            except RuntimeError:  # the body broke off (granian: RSGIProtocolClosed)
                self._gone = True
                return DISCONNECT
            except BaseException:
                self._gone = True
                raise
            self._reading = True
            return {"type": "http.request", "body": body, "more_body": False}
        if self._chunks is None:
            self._chunks = protocol.__aiter__()
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._reading = True
            return EMPTY_END
        except BaseException:
            self._reading = False
            self._gone = True
            raise
        if chunk:
            self._read += len(chunk)
            more = self._length is None or self._read < self._length
            if not more:
                self._reading = True
            return {"type": "http.request", "body": chunk, "more_body": more}
        # granian yields an empty chunk where the body breaks (a malformed chunk, the client
        # gone), then ends it with another; a whole body ends with one empty chunk.
        try:
            await self._chunks.__anext__()
        except StopAsyncIteration:
            self._reading = True
            return EMPTY_END
        self._reading = False
        self._gone = True
        return DISCONNECT

    # --- send --------------------------------------------------------------------------------
    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if self._status is None or self._done:
                raise RuntimeError("http.response.body outside a started, unfinished answer")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            stream = self._stream
            if stream is None:
                if not more:
                    self._done = True
                    self._protocol.response_bytes(self._status, self._headers, body)
                    return
                stream = self._stream = self._protocol.response_stream(self._status, self._headers)
            if body:
                try:
                    await stream.send_bytes(body)
                except RuntimeError as exc:  # RSGIProtocolClosed: the client left
                    raise OSError(str(exc)) from exc
            if not more:
                self._end()
        elif kind == "http.response.start":
            if self._status is not None:
                raise RuntimeError("http.response.start sent twice")
            self._status = message["status"]
            self._headers = str_headers(message.get("headers", ()))
        elif kind == "http.response.pathsend":
            if self._status is None or self._done:
                raise RuntimeError("http.response.pathsend outside a started, unfinished answer")
            self._done = True
            self._protocol.response_file(self._status, self._headers, str(message["path"]))
        else:
            raise RuntimeError(f"unsupported ASGI message {kind!r}")

    def _end(self) -> None:
        self._done = True
        # granian ends a streamed body when its transport is released.
        self._stream = None

    def finish(self) -> None:
        """The app returned: an answer begun and not ended is ended as it stands (granian
        answers 500 for an app that sent nothing)."""
        if self._status is not None and not self._done:
            if self._stream is None:
                self._protocol.response_bytes(self._status, self._headers, b"")
            self._end()


class WebSocketExchange:
    """One WebSocket's ``receive`` and ``send`` over an RSGI protocol object."""

    __slots__ = ("_connected", "_protocol", "_state", "_transport", "scope")

    def __init__(self, scope: Scope, protocol: Any) -> None:
        self.scope = scope
        self._protocol = protocol
        self._transport: Any = None
        self._connected = False
        #: "open", "closed" (by the app) or "gone" (the peer closed or left)
        self._state = "open"

    async def receive(self) -> Message:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        if self._state != "open" or self._transport is None:
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        try:
            message = await self._transport.receive()
        except RuntimeError:  # RSGIProtocolClosed: the connection was lost
            self._state = "gone"
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        kind = int(message.kind)
        if kind == 2:
            return {"type": "websocket.receive", "text": message.data}
        if kind == 1:
            return {"type": "websocket.receive", "bytes": message.data}
        self._state = "gone"
        return {"type": "websocket.disconnect", "code": 1005, "reason": ""}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            transport = self._transport
            if transport is None or self._state != "open":
                raise OSError("the WebSocket is not open")
            try:
                text = message.get("text")
                if text is not None:
                    await transport.send_str(text)
                else:
                    await transport.send_bytes(message.get("bytes") or b"")
            except RuntimeError as exc:  # RSGIProtocolClosed: the peer is gone
                self._state = "gone"
                raise OSError(str(exc)) from exc
        elif kind == "websocket.accept":
            if self._transport is not None:
                raise RuntimeError("websocket.accept sent twice")
            self._transport = await self._protocol.accept()
        elif kind == "websocket.close":
            if self._state == "open":
                self._state = "closed"
                # Before accept: the handshake is refused with 403, as granian's ASGI does.
                accepted = self._transport is not None
                self._protocol.close(int(message.get("code") or 1000) if accepted else 403)
                self._let_go()
        else:
            raise RuntimeError(f"unsupported ASGI message {kind!r}")

    def finish(self) -> None:
        if self._state == "open":
            self._state = "closed"
            self._protocol.close(1000 if self._transport is not None else 403)
        self._let_go()

    def _let_go(self) -> None:
        # granian 2.8 sends the close frame when the transport object goes, not at close():
        # the exchange may outlive the handler in a reference cycle (the app's session holds
        # its receive and send) until the collector runs, which on a quiet server was never
        # within the client's patience.
        self._transport = None


class AsgiBridge:
    """Serves an ASGI app's HTTP requests and WebSockets from RSGI calls."""

    def __init__(self, app: ASGIApp, state: dict[str, Any], root_path: str = "") -> None:
        self.app = app
        #: The lifespan's state; every request gets a shallow copy, as under ASGI.
        self.state = state
        self.root_path = root_path

    def exchange(self, scope: Any, protocol: Any) -> HttpExchange:
        return HttpExchange(
            asgi_scope(scope, self.state, self.root_path), protocol, _declared_length(scope.headers)
        )

    async def http(self, scope: Any, protocol: Any, app: ASGIApp | None = None) -> None:
        exchange = self.exchange(scope, protocol)
        try:
            await (app or self.app)(exchange.scope, exchange.receive, exchange.send)
        finally:
            exchange.finish()

    async def websocket(self, scope: Any, protocol: Any) -> None:
        exchange = WebSocketExchange(asgi_scope(scope, self.state, self.root_path), protocol)
        try:
            await self.app(exchange.scope, exchange.receive, exchange.send)
        finally:
            with contextlib.suppress(RuntimeError):
                exchange.finish()


__all__ = ["AsgiBridge", "Header", "HttpExchange", "WebSocketExchange", "str_headers"]
