"""A local HTTP server speaking the WhatsApp Cloud API send format, with injectable failures.

It runs in a background thread on 127.0.0.1 (a real socket, so the real httpx client code is
exercised) and answers:

- ``POST /{version}/{phone_number_id}/messages`` with a message (text, template, ...): the Graph
  API's success body ``{"messaging_product", "contacts", "messages": [{"id": "wamid..."}]}``;
- the same path with ``{"status": "read", "message_id": ...}`` (a read receipt)
  answered with ``{"success": true}``,
- a wrong bearer token: 401 with OAuth error code 190, as Graph does.

Failures are queued with :meth:`GraphServer.fail_next` and consumed one per request.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

ERROR_TITLES: dict[int, str] = {
    100: "Invalid parameter",
    131000: "Something went wrong",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    130429: "Rate limit hit",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
}


@dataclass(frozen=True)
class Failure:
    """One injected failure: an HTTP status with an optional Graph error code, or a stall."""

    http_status: int = 500
    code: int | None = None
    #: Seconds to stall before answering (longer than the client timeout = a timeout).
    delay: float = 0.0
    #: Answer with a body that is not JSON.
    garbage: bool = False


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class GraphServer:
    token: str = "test-token"
    phone_number_id: str = "106540352242922"
    version: str = "v21.0"
    requests: list[Received] = field(default_factory=list)
    _failures: list[Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, failure: Failure, count: int = 1) -> None:
        with self._lock:
            self._failures.extend([failure] * count)

    def sent_messages(self) -> list[Any]:
        """Bodies of accepted message sends (read receipts excluded)."""
        return [r.body for r in self.requests if isinstance(r.body, dict) and "to" in r.body]

    def read_receipts(self) -> list[Any]:
        return [r.body for r in self.requests if isinstance(r.body, dict) and r.body.get("status")]

    def _take_failure(self) -> Failure | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _next_id(self) -> str:
        with self._lock:
            return f"wamid.FAKE{next(self._ids):08d}"

    def start(self) -> GraphServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any, raw: bytes | None = None) -> None:
                data = raw if raw is not None else orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # The client may have given up (an injected stall outlived its timeout).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    body = None
                failure = fake._take_failure()
                if failure is not None and failure.delay:
                    time.sleep(failure.delay)
                # Record after any stall, so a timed-out attempt is still visible to tests.
                fake.requests.append(Received(self.path, dict(self.headers.items()), body))
                if failure is not None:
                    if failure.garbage:
                        self._reply(failure.http_status, None, raw=b"<html>oops</html>")
                    elif failure.code is not None or failure.http_status >= 400:
                        self._reply(failure.http_status, _error(failure.code or 1))
                    else:
                        self._reply(failure.http_status, _success(fake, body))
                    return
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._reply(401, _error(190, "Invalid OAuth access token."))
                    return
                if self.path != f"/{fake.version}/{fake.phone_number_id}/messages":
                    self._reply(400, _error(100, "Unsupported post request."))
                    return
                if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
                    self._reply(400, _error(100, "The parameter messaging_product is required."))
                    return
                if body.get("status") == "read":
                    ok = isinstance(body.get("message_id"), str)
                    self._reply(200 if ok else 400, {"success": True} if ok else _error(100))
                    return
                if not isinstance(body.get("to"), str) or body.get("type") not in (
                    "text",
                    "template",
                    "image",
                    "document",
                    "interactive",
                    "reaction",
                ):
                    self._reply(400, _error(100, "Invalid parameter"))
                    return
                self._reply(200, _success(fake, body))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for the next poll, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _success(fake: GraphServer, body: Any) -> dict[str, Any]:
    to = body.get("to", "") if isinstance(body, dict) else ""
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": fake._next_id()}],
    }


def _error(code: int, message: str | None = None) -> dict[str, Any]:
    title = ERROR_TITLES.get(code, "Error")
    return {
        "error": {
            "message": message or f"({code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": title},
            "fbtrace_id": "AbCdEfGhIjK",
        }
    }
