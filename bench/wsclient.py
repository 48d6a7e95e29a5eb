"""A lean WebSocket client for the load benches (RFC 6455, loopback only).

The ``websockets`` library's asyncio client spends most of a bench client's time in its own
machinery (a context manager, a lock and a queue per frame): at a few thousand messages a
second the load generator used more than half a core of the two the servers share, and so
measured itself as much as the servers. This client is an ``asyncio.Protocol``: a frame sent is
one ``write``; frames received are parsed from one buffer into a queue of messages. Like
``loadgen``'s raw HTTP, it is the same client for every server a bench compares.

Every message carries the time its bytes were read from the socket (``received_at`` after
``recv``, ``time.perf_counter``): a bench's one event loop holds a thousand connections, and a
frame read at the start of a busy loop turn reaches its reader task only after the turn's other
callbacks, so a time taken in the task would count the client's own queue as the server's.
A bench may also take each message in the read's own callback (``hand_over``, with
``send_nowait`` to answer), which spares a task's wake-up per message.

What it does: the opening handshake (checked: status 101 and ``Sec-WebSocket-Accept``),
masked text and binary frames out, text, binary and fragmented messages in, answers to pings,
the closing handshake. What it leaves out: extensions (no compression is negotiated) and
subprotocols.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

try:  # websockets' C masking, as its own frames use; its pure-Python one where not built
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - every wheel on PyPI has the speedups
    from websockets.utils import apply_mask

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _BINARY, _CONTINUATION, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
#: Bytes written but not yet sent above which ``send`` waits (as a stream's drain).
_HIGH_WATER = 256 * 1024


class _Masks:
    """Masking keys from the OS's random source, read 4 KiB at a time (a ``getrandom`` call
    per frame was a tenth of a bench client's time)."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def take(self) -> bytes:
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(4096), 0
        self._at += 4
        return self._pool[self._at - 4 : self._at]


_MASKS = _Masks()


class ConnectionClosed(ConnectionError):
    """The connection is closed (by either side, or lost); ``code`` from the close frame."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed ({code}): {reason}")
        self.code = code
        self.reason = reason


class LeanSocket(asyncio.Protocol):
    """One client connection; ``connect`` makes it."""

    def __init__(self, host: str, path: str) -> None:
        self._key = base64.b64encode(os.urandom(16))
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self._open = False
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        #: Messages with the time their last bytes were read.
        self._messages: deque[tuple[bytes, float]] = deque()
        self._read_at = 0.0
        #: When the bytes of the message ``recv`` returned last were read (``perf_counter``).
        self.received_at = 0.0
        #: ``hand_over``'s callbacks.
        self.on_message: Callable[[bytes, float], None] | None = None
        self.on_closed: Callable[[ConnectionClosed], None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._fragments: list[bytes] | None = None
        self._closed: ConnectionClosed | None = None
        self._close_seen = asyncio.get_running_loop().create_future()
        self._writable: asyncio.Future[None] | None = None

    # --- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods.
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._read_at = time.perf_counter()
        self._buffer += data
        if not self._open and not self._handshake():
            return
        self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionClosed(None, repr(exc) if exc else "connection lost"))
        if not self._close_seen.done():
            self._close_seen.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # --- the API the benches use ----------------------------------------------------------
    async def send(self, data: bytes | str, *, text: bool = True) -> None:
        if self._closed is not None:
            raise self._closed
        payload = data.encode() if isinstance(data, str) else data
        self._write_frame(_TEXT if text else _BINARY, payload)
        if self._writable is not None:
            await self._writable

    def hand_over(
        self,
        on_message: Callable[[bytes, float], None] | None,
        on_closed: Callable[[ConnectionClosed], None] | None = None,
    ) -> None:
        """From now on each message goes to ``on_message`` (with its read time) as it is read,
        inside the read's callback (so it must not block), instead of to ``recv``: first those
        read before, in order. ``on_closed`` is told once when the connection closes or is
        lost. ``None`` gives the messages back to ``recv``."""
        self.on_message, self.on_closed = on_message, on_closed
        if on_message is not None:
            while self._messages:
                message, read_at = self._messages.popleft()
                on_message(message, read_at)
        if self._closed is not None and on_closed is not None:
            self.on_closed = None
            on_closed(self._closed)

    def send_nowait(self, data: bytes | str, *, text: bool = True) -> None:
        """``send`` for a callback: the frame is written at once, whatever is still buffered."""
        if self._closed is not None:
            raise self._closed
        self._write_frame(
            _TEXT if text else _BINARY, data.encode() if isinstance(data, str) else data
        )

    async def recv(self, *, decode: bool = True) -> Any:
        """The next message: ``str`` when ``decode``, else ``bytes``."""
        while not self._messages:
            if self._closed is not None:
                raise self._closed
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message, self.received_at = self._messages.popleft()
        return message.decode() if decode else message

    async def close(self, code: int = 1000) -> None:
        """The closing handshake: a close frame, the server's answer (2 s at most)."""
        if self.transport is None or self.transport.is_closing():
            return
        if self._closed is None:
            self._write_frame(_CLOSE, code.to_bytes(2, "big"))
            self._fail(ConnectionClosed(code, "closed by the client"))
        try:
            await asyncio.wait_for(asyncio.shield(self._close_seen), 2.0)
        except TimeoutError:
            pass
        finally:
            self.transport.close()

    # --- inside --------------------------------------------------------------------------
    def _handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        status = head[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        # SHA-1 is what RFC 6455 names for the accept value; nothing secret depends on it.
        digest = hashlib.sha1(self._key + _GUID, usedforsecurity=False).digest()
        accept = base64.b64encode(digest).decode()
        if len(status) < 2 or status[1] != "101" or headers.get("sec-websocket-accept") != accept:
            error = ConnectionError(f"WebSocket handshake refused: {head[0]}")
            if not self._opened.done():
                self._opened.set_exception(error)
            assert self.transport is not None
            self.transport.close()
            return False
        self._open = True
        if not self._opened.done():
            self._opened.set_result(None)
        return True

    def _parse(self) -> None:
        buf = self._buffer
        size = len(buf)
        pos = 0
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if second & 0x80:
                self._protocol_error("a server frame was masked")
                return
            if size - pos - head < length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            self._frame(first & 0x80, first & 0x0F, payload)
        if pos:
            del buf[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (_TEXT, _BINARY):
            if fin:
                self._deliver(payload)
            else:
                self._fragments = [payload]
        elif opcode == _CONTINUATION:
            if self._fragments is None:
                self._protocol_error("a continuation without a first fragment")
                return
            self._fragments.append(payload)
            if fin:
                message, self._fragments = b"".join(self._fragments), None
                self._deliver(message)
        elif opcode == _PING:
            if self._closed is None:
                self._write_frame(_PONG, payload)
        elif opcode == _CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            if self._closed is None:  # the server's close first: answered with the same code
                self._write_frame(_CLOSE, payload[:2])
            self._fail(ConnectionClosed(code, payload[2:].decode(errors="replace")))
            if not self._close_seen.done():
                self._close_seen.set_result(None)
            assert self.transport is not None
            self.transport.close()

    def _deliver(self, message: bytes) -> None:
        if self.on_message is not None:
            self.on_message(message, self._read_at)
            return
        self._messages.append((message, self._read_at))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _write_frame(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        length = len(payload)
        if length < 126:
            head = bytes((0x80 | opcode, 0x80 | length))
        elif length < 1 << 16:
            head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
        mask = _MASKS.take()
        self.transport.write(head + mask + apply_mask(payload, mask))

    def _protocol_error(self, what: str) -> None:
        self._fail(ConnectionClosed(1002, what))
        assert self.transport is not None
        self.transport.close()

    def _fail(self, error: ConnectionClosed) -> None:
        if self._closed is None:
            self._closed = error
            told, self.on_closed = self.on_closed, None
            if told is not None:
                told(error)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)


async def connect(url: str, *, open_timeout: float = 30.0) -> LeanSocket:
    """Open ``ws://host:port/path``; ConnectionError if the server refuses the upgrade."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None:
        raise ValueError("only ws:// URLs with a host")
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    _transport, socket = await asyncio.wait_for(
        loop.create_connection(
            lambda: LeanSocket(f"{parts.hostname}:{port}", path), parts.hostname, port
        ),
        open_timeout,
    )
    try:
        await asyncio.wait_for(asyncio.shield(socket._opened), open_timeout)
    except BaseException:
        if socket.transport is not None:
            socket.transport.close()
        raise
    return socket
