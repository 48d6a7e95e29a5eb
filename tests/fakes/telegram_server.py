"""A local HTTP server speaking the Telegram Bot API wire format, with injectable failures.

It runs in a background thread so that both in-process code and separate worker processes can
talk to it. Faults are scripted in order, globally or per idempotency key:

- ``"ok"``        deliver and answer normally
- ``"429:N"``     answer 429 with ``parameters.retry_after = N``
- ``"500"``       answer 500 (nothing delivered)
- ``"timeout:S"`` hold the request S seconds without delivering (the client times out first)
- ``"delay:S"``   deliver at once, answer only after S seconds (a worker can die while waiting)
- ``"drop"``      close the connection without an answer (nothing delivered)

Telegram itself has no idempotency key; this double honours the ``X-Kervan-Idempotency-Key``
header the client sends, and records every request (``requests``) apart from the messages it
actually delivered (``delivered``), so tests can count what the provider saw exactly once.
Everything is also appended to ``log_path`` as JSON lines when one is given.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

IDEMPOTENCY_HEADER = "X-Kervan-Idempotency-Key"
BOT_USER = {"id": 777000, "is_bot": True, "first_name": "kervan test", "username": "kervan_bot"}


@dataclass(frozen=True)
class Fault:
    kind: str
    seconds: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> Fault:
        kind, _, arg = spec.partition(":")
        if kind not in ("ok", "429", "500", "timeout", "delay", "drop"):
            raise ValueError(f"unknown fault {spec!r}")
        return cls(kind, float(arg) if arg else (1.0 if kind == "429" else 0.0))


class FakeTelegram:
    def __init__(
        self,
        token: str = "123456:TEST-token",  # noqa: S107 - a test double
        *,
        log_path: Path | None = None,
    ) -> None:
        self.token = token
        self.log_path = log_path
        self.unknown_chats: set[str] = set()
        self.fallback_status = 200
        self.requests: list[dict[str, Any]] = []
        self.delivered: list[dict[str, Any]] = []
        self.fallback_posts: list[dict[str, Any]] = []
        self._global_faults: deque[Fault] = deque()
        self._key_faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._by_key: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._next_message_id = 1
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------------
    def start(self) -> FakeTelegram:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def fallback_url(self) -> str:
        return f"{self.base_url}/fallback"

    def script(self, *specs: str, key: str | None = None) -> None:
        faults = [Fault.parse(s) for s in specs]
        with self._lock:
            (self._key_faults[key] if key else self._global_faults).extend(faults)

    def requests_for(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["key"] == key]

    def delivered_for(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.delivered if m["key"] == key]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    # --- request handling (called from server threads) ------------------------------------
    def _next_fault(self, key: str | None) -> Fault:
        with self._lock:
            if key and self._key_faults.get(key):
                return self._key_faults[key].popleft()
            if self._global_faults:
                return self._global_faults.popleft()
        return Fault("ok")

    def _log(self, event: dict[str, Any]) -> None:
        if self.log_path is not None:
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(event) + "\n")

    def _send_message(self, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        chat_id, text = body.get("chat_id"), body.get("text")
        fault = self._next_fault(key)
        record = {
            "chat_id": chat_id,
            "text": text,
            "key": key,
            "fault": fault.kind,
            "t": time.time(),
        }
        with self._lock:
            self.requests.append(record)
        self._log({"event": "request", **record})
        if fault.kind == "timeout":
            time.sleep(fault.seconds)
            return 504, _error(504, "Gateway Timeout")
        if fault.kind == "drop":
            raise ConnectionAbortedError
        if fault.kind == "500":
            return 500, _error(500, "Internal Server Error")
        if fault.kind == "429":
            retry_after = int(fault.seconds)
            return 429, _error(
                429,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )
        if chat_id in (None, ""):
            return 400, _error(400, "Bad Request: chat_id is empty")
        if not text:
            return 400, _error(400, "Bad Request: message text is empty")
        if str(chat_id) in self.unknown_chats:
            return 400, _error(400, "Bad Request: chat not found")
        with self._lock:
            message = self._by_key.get(key) if key else None
            if message is None:
                message = {
                    "message_id": self._next_message_id,
                    "from": BOT_USER,
                    "chat": {"id": chat_id, "type": "private"},
                    "date": int(time.time()),
                    "text": text,
                }
                self._next_message_id += 1
                if key:
                    self._by_key[key] = message
                self.delivered.append({"chat_id": chat_id, "text": text, "key": key})
                self._log({"event": "delivered", "chat_id": chat_id, "text": text, "key": key})
        if fault.kind == "delay":
            time.sleep(fault.seconds)
        return 200, {"ok": True, "result": message}

    def _fallback(self, body: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.fallback_posts.append(body)
        self._log({"event": "fallback", "body": body})
        return self.fallback_status, {"ok": self.fallback_status < 400}


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


def _handler_for(fake: FakeTelegram) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = _decode(raw, self.headers.get("Content-Type", ""))
            except ValueError:
                self._reply(400, _error(400, "Bad Request: can't parse request body"))
                return
            if self.path == "/fallback":
                self._reply(*fake._fallback(body))
                return
            prefix = f"/bot{fake.token}/"
            if not self.path.startswith("/bot"):
                self._reply(404, _error(404, "Not Found"))
                return
            if not self.path.startswith(prefix):
                self._reply(401, _error(401, "Unauthorized"))
                return
            method = self.path[len(prefix) :]
            if method.lower() != "sendmessage":
                self._reply(404, _error(404, "Not Found: method not found"))
                return
            try:
                status, payload = fake._send_message(body, self.headers.get(IDEMPOTENCY_HEADER))
            except ConnectionAbortedError:
                self.close_connection = True
                self.connection.close()
                return
            self._reply(status, payload)

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


def _decode(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if "application/x-www-form-urlencoded" in content_type:
        return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value
