"""A keep-alive HTTP/1.1 client on a plain socket, as a load balancer or a proxy reuses its
connections: it reads exactly one answer per request and decides from ``Connection: close``
whether the connection may carry the next one."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass

TIMEOUT = 10.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case; the last of a repeated field
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


def request(
    method: str, path: str, *, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: kervan.test"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body and not any(name.lower() == "transfer-encoding" for name, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self._buffer = b""

    def send(self, raw: bytes) -> None:
        """Sends ``raw``; a server that answered early and closed may cut the sending short
        (its answer is still read)."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.sock.sendall(raw)

    def _more(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:
            return b""

    def answer(self) -> Answer:
        while b"\r\n\r\n" not in self._buffer:
            chunk = self._more()
            if not chunk:
                raise ConnectionError(f"the connection ended before an answer: {self._buffer!r}")
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *fields = head.decode("latin-1").split("\r\n")
        headers = {}
        for field in fields:
            name, _, value = field.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers.get("content-length", "0"))
        while len(self._buffer) < size:
            chunk = self._more()
            if not chunk:
                raise ConnectionError("the connection ended inside an answer's body")
            self._buffer += chunk
        body, self._buffer = self._buffer[:size], self._buffer[size:]
        return Answer(int(status_line.split(" ")[1]), headers, body)

    def ended(self) -> bool:
        """Whether the server closes the connection (nothing more arrives before its end)."""
        if self._buffer:
            return False
        return self._more() == b""

    def close(self) -> None:
        self.sock.close()


def exchange(port: int, raw: bytes) -> tuple[Answer, Connection]:
    conn = Connection(port)
    conn.send(raw)
    return conn.answer(), conn


def ends_cleanly(port: int, raw: bytes) -> Answer:
    """Sends ``raw`` on a new connection and checks the exchange ended cleanly: either the
    answer says ``Connection: close`` and the server closes, or the next request on the same
    connection is answered. Returns the first answer."""
    answer, conn = exchange(port, raw)
    try:
        if answer.closes:
            assert conn.ended(), "Connection: close, but the connection stayed open"
        else:
            conn.send(request("GET", "/health"))
            try:
                after = conn.answer()
            except ConnectionError as exc:
                raise AssertionError(
                    f"{answer.status} without Connection: close, and the next request on the "
                    f"connection failed: {exc}"
                ) from None
            assert after.status == 200, after
    finally:
        conn.close()
    return answer
