"""The end of a request body the app did not read: read and dropped, or the connection closed.

A route may answer before it reads the body: 413 from the declared length, 401, 404, 405, a
rate-limit refusal. The rest of the body is then still on the connection, where the next request
would be read. granian closes such a connection after the answer, but the answer does not say
so, and a client that sends its next keep-alive request on it sees that request fail. The edge
ends every such exchange cleanly:

* a small rest of a declared length (at most ``DRAIN_LIMIT`` bytes, arriving within
  ``DRAIN_SECONDS``) is read and dropped before the answer goes out: the connection stays
  usable;
* anything else (a larger or unknown rest, a client waiting for ``100 Continue`` before it
  sends the body, a body cut off or malformed) gets ``Connection: close`` on the answer, and the
  server closes the connection after it.
"""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive

from service.fast_routes import Header

#: The most body bytes read only to be dropped so that the connection stays usable.
DRAIN_LIMIT = 64 * 1024
#: How long the rest may take to arrive before the connection is closed instead.
DRAIN_SECONDS = 2.0
CLOSE: Header = (b"connection", b"close")


def has_body(content_length: bytes | None, transfer_encoding: bytes | None) -> bool:
    return transfer_encoding is not None or (
        content_length is not None and content_length.strip() != b"0"
    )


class RequestBody:
    """Wraps the request's ``receive`` and knows whether the body was read to its end."""

    __slots__ = ("_declared", "_read", "_receive", "_waits", "ended", "intact")

    def __init__(
        self, receive: Receive, content_length: bytes | None, expect: bytes | None
    ) -> None:
        self._receive = receive
        # The server refused a malformed length before the app ran; chunked bodies have none.
        text = content_length.strip() if content_length is not None else b""
        self._declared = int(text) if text.isdigit() else None
        self._waits = expect is not None and expect.lower() == b"100-continue"
        self._read = 0
        #: The last body message (or a disconnect) was received.
        self.ended = False
        #: No disconnect came before the body's end (the server delivers one when the client
        #: left or the body's framing was broken).
        self.intact = True

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._read += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.ended = True
        elif message["type"] == "http.disconnect":
            self.ended = True
            self.intact = False
        return message

    async def reusable(self) -> bool:
        """Whether the connection may carry another request after the answer: the body was read
        to its end, or its small rest is read now and dropped."""
        if not self.ended:
            # A client waiting for 100 Continue would send the body only once asked to; asking
            # it for a body nobody reads costs more than a new connection.
            if self._waits or self._declared is None:
                return False
            if self._declared - self._read > DRAIN_LIMIT:
                return False
            try:
                async with asyncio.timeout(DRAIN_SECONDS):
                    while not self.ended:
                        await self.receive()
            except TimeoutError:
                return False
        return self.intact
