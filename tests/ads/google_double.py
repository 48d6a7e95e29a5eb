"""A local Google Ads double: the OAuth token endpoint and ``customers/{id}:uploadClickConversions``
in Google's REST wire format (``service/ads/wire.py`` cites the protos), with injectable faults.

It runs in a background thread so that in-process code and separate ``kervan worker`` processes
alike can talk to it. Like Google it records each conversion once per (conversion action, order
id): a second upload of an order id is answered ``ORDER_ID_ALREADY_IN_USE``, a repeated order id
inside one request ``DUPLICATE_ORDER_ID``. ``accepted`` counts how often each order id was
accepted - the tests assert that no sale ever counted twice.

Upload faults, scripted in order (``script``), each used by one request:

- ``ok``           answer normally
- ``429``          ``RESOURCE_EXHAUSTED`` (quotaError), with ``Retry-After`` when ``429:N``
- ``500``/``503``  ``INTERNAL``/``UNAVAILABLE`` (internalError), nothing recorded
- ``timeout:S``    hold the request S seconds, record nothing, then 504 (the client gave up)
- ``delay:S``      record the conversions, answer only after S seconds (a worker can die)
- ``drop``         close the connection without an answer, nothing recorded
- ``expired``      401 ``OAUTH_TOKEN_EXPIRED``; ``revoked``: 401 ``OAUTH_TOKEN_REVOKED``
- ``403``          ``USER_PERMISSION_DENIED`` (authorizationError)
- ``400:CODE``     an RPC-level ``INVALID_ARGUMENT`` with ``conversionUploadError: CODE``

Row errors: ``fail_click(click_id, code, times)`` answers that conversion with ``code`` in the
partial failure (``times`` None: always). Token faults: ``script_token(...)`` with ``ok``,
``500``, ``timeout:S``; ``revoke(refresh_token)`` makes its grant ``invalid_grant``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

DEVELOPER_TOKEN = "double-developer-token"
CLIENT_ID = "double-client.apps.googleusercontent.com"
CLIENT_SECRET = "double-client-secret"
_PATH = re.compile(r"^/(v[0-9]+)/customers/([0-9]{10}):uploadClickConversions$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
CLICK_KINDS = ("gclid", "gbraid", "wbraid")
MAX_CONVERSIONS = 2000
DROP = -1  # close the connection without an answer
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True)
class Fault:
    kind: str
    arg: str = ""

    @classmethod
    def parse(cls, spec: str) -> Fault:
        kind, _, arg = spec.partition(":")
        if kind not in (
            "ok",
            "429",
            "500",
            "503",
            "timeout",
            "delay",
            "drop",
            "expired",
            "revoked",
            "403",
            "400",
        ):
            raise ValueError(f"unknown fault {spec!r}")
        return cls(kind, arg)


class GoogleAdsDouble:
    def __init__(self) -> None:
        self.version_seen: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self.token_requests: list[dict[str, Any]] = []
        #: How often each order id was accepted (recorded as a conversion): never above 1.
        self.accepted: Counter[str] = Counter()
        self.conversions: dict[str, dict[str, Any]] = {}
        self.revoked: set[str] = set()
        self._access: dict[str, str] = {}  # access token -> refresh token
        self._faults: deque[Fault] = deque()
        self._customer_faults: dict[str, deque[Fault]] = {}
        self._token_faults: deque[Fault] = deque()
        self._click_errors: dict[str, list[Any]] = {}  # click id -> [code, times left]
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._next_access = 0
        #: Seconds every answered upload takes (Google takes about a second for a big batch).
        self.latency = 0.0

    # --- control -------------------------------------------------------------------------
    def start(self) -> GoogleAdsDouble:
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

    def __enter__(self) -> GoogleAdsDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def script(self, *specs: str, customer: str | None = None) -> None:
        faults = [Fault.parse(s) for s in specs]
        with self._lock:
            if customer is None:
                self._faults.extend(faults)
            else:
                self._customer_faults.setdefault(customer, deque()).extend(faults)

    def script_token(self, *specs: str) -> None:
        with self._lock:
            self._token_faults.extend(Fault.parse(s) for s in specs)

    def fail_click(self, click_id: str, code: str, times: int | None = 1) -> None:
        with self._lock:
            self._click_errors[click_id] = [code, times]

    def revoke(self, refresh_token: str) -> None:
        with self._lock:
            self.revoked.add(refresh_token)
            for access in [a for a, r in self._access.items() if r == refresh_token]:
                del self._access[access]

    def uploads(self, customer: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if customer is None or r["customer_id"] == customer]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return bool(predicate())

    # --- the token endpoint (called from server threads) -----------------------------------
    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any], float]:
        with self._lock:
            fault = self._token_faults.popleft() if self._token_faults else Fault("ok")
            self.token_requests.append({**form, "fault": fault.kind})
        if fault.kind == "timeout":
            return 504, {"error": "timeout"}, float(fault.arg or 5)
        if fault.kind == "500":
            return 500, {"error": "internal_failure"}, 0.0
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}, 0.0
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}, 0.0
        refresh = form.get("refresh_token", "")
        with self._lock:
            if not refresh or refresh in self.revoked:
                return (
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    },
                    0.0,
                )
            self._next_access += 1
            access = f"ya29.double-{self._next_access}-{secrets.token_hex(4)}"
            self._access[access] = refresh
        return (
            200,
            {
                "access_token": access,
                "expires_in": 3599,
                "scope": "https://www.googleapis.com/auth/adwords",
                "token_type": "Bearer",
            },
            0.0,
        )

    # --- uploads ---------------------------------------------------------------------------
    def _next_fault(self, customer: str) -> Fault:
        with self._lock:
            own = self._customer_faults.get(customer)
            if own:
                return own.popleft()
            if self._faults:
                return self._faults.popleft()
        return Fault("ok")

    def _upload(
        self, version: str, customer: str, headers: dict[str, str], body: Any, request_id: str
    ) -> tuple[int, dict[str, Any], float, dict[str, str]]:
        """(status, answer, seconds to hold it, extra headers)"""
        fault = self._next_fault(customer)
        conversions = body.get("conversions") if isinstance(body, dict) else None
        record = {
            "version": version,
            "customer_id": customer,
            "developer_token": headers.get("developer-token"),
            "login_customer_id": headers.get("login-customer-id"),
            "authorization": headers.get("authorization"),
            "body": body,
            "count": len(conversions) if isinstance(conversions, list) else None,
            "order_ids": [c.get("orderId") for c in conversions or [] if isinstance(c, dict)],
            "fault": fault.kind,
            "request_id": request_id,
            "t": time.time(),
        }
        with self._lock:
            self.requests.append(record)
            self.version_seen.add(version)
        if fault.kind == "drop":
            return DROP, {}, 0.0, {}
        if fault.kind == "timeout":
            return (
                504,
                _rpc(504, "Deadline exceeded.", [], version, request_id),
                float(fault.arg or 5),
                {},
            )
        if fault.kind == "429":
            extra = {"Retry-After": fault.arg} if fault.arg else {}
            errors = [("quotaError", "RESOURCE_EXHAUSTED", "Too many requests.", None)]
            return (
                429,
                _rpc(429, "Resource has been exhausted.", errors, version, request_id),
                0.0,
                extra,
            )
        if fault.kind in ("500", "503"):
            errors = [("internalError", "INTERNAL_ERROR", "An internal error has occurred.", None)]
            status = int(fault.kind)
            return status, _rpc(status, "Internal error.", errors, version, request_id), 0.0, {}
        if fault.kind in ("expired", "revoked"):
            code = "OAUTH_TOKEN_EXPIRED" if fault.kind == "expired" else "OAUTH_TOKEN_REVOKED"
            errors = [("authenticationError", code, "The OAuth token is not valid.", None)]
            return (
                401,
                _rpc(
                    401,
                    "Request is missing required authentication credential.",
                    errors,
                    version,
                    request_id,
                ),
                0.0,
                {},
            )
        if fault.kind == "403":
            errors = [
                (
                    "authorizationError",
                    "USER_PERMISSION_DENIED",
                    "User doesn't have permission to access customer.",
                    None,
                )
            ]
            return (
                403,
                _rpc(403, "The caller does not have permission", errors, version, request_id),
                0.0,
                {},
            )
        if fault.kind == "400":
            errors = [
                (
                    "conversionUploadError",
                    fault.arg or "NO_CONVERSION_ACTION_FOUND",
                    "The request was refused.",
                    None,
                )
            ]
            return (
                400,
                _rpc(400, "Request contains an invalid argument.", errors, version, request_id),
                0.0,
                {},
            )
        authorization = headers.get("authorization", "")
        with self._lock:
            known = authorization.removeprefix("Bearer ") in self._access
        if not known:
            errors = [("authenticationError", "OAUTH_TOKEN_INVALID", "Invalid OAuth token.", None)]
            return (
                401,
                _rpc(
                    401,
                    "Request had invalid authentication credentials.",
                    errors,
                    version,
                    request_id,
                ),
                0.0,
                {},
            )
        if headers.get("developer-token") != DEVELOPER_TOKEN:
            errors = [("authenticationError", "DEVELOPER_TOKEN_INVALID", "Bad token.", None)]
            return 401, _rpc(401, "Developer token invalid.", errors, version, request_id), 0.0, {}
        if not isinstance(conversions, list):
            errors = [("requestError", "REQUIRED_FIELD_MISSING", "conversions missing.", None)]
            return 400, _rpc(400, "Invalid argument.", errors, version, request_id), 0.0, {}
        if len(conversions) > MAX_CONVERSIONS:
            errors = [
                (
                    "conversionUploadError",
                    "TOO_MANY_CONVERSIONS_IN_REQUEST",
                    "Upload fewer than 2001 events in a single request.",
                    None,
                )
            ]
            return 400, _rpc(400, "Invalid argument.", errors, version, request_id), 0.0, {}
        if body.get("partialFailure") is not True:
            errors = [
                (
                    "partialFailureError",
                    "PARTIAL_FAILURE_MODE_REQUIRED",
                    "partial_failure must be true.",
                    None,
                )
            ]
            return 400, _rpc(400, "Invalid argument.", errors, version, request_id), 0.0, {}
        results, row_errors = self._rows(conversions)
        answer: dict[str, Any] = {"results": results, "jobId": str(secrets.randbelow(2**31))}
        if row_errors:
            answer["partialFailureError"] = {
                "code": 3,
                "message": f"{len(row_errors)} conversions failed.",
                "details": [_failure(row_errors, version, request_id)],
            }
        hold = float(fault.arg or 0) if fault.kind == "delay" else self.latency
        return 200, answer, hold, {}

    def _rows(self, conversions: list[Any]) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
        results: list[dict[str, Any]] = []
        errors: list[tuple[Any, ...]] = []
        in_request = Counter(c.get("orderId") for c in conversions if isinstance(c, dict))
        with self._lock:
            for index, conversion in enumerate(conversions):
                clicks = [k for k in CLICK_KINDS if conversion.get(k)]
                error: tuple[str, str] | None = None
                order = conversion.get("orderId")
                action = conversion.get("conversionAction")
                if len(clicks) != 1:
                    error = (
                        ("conversionUploadError", "GBRAID_WBRAID_BOTH_SET")
                        if clicks
                        else ("requestError", "REQUIRED_FIELD_MISSING")
                    )
                elif not _DATE_TIME.match(str(conversion.get("conversionDateTime", ""))):
                    error = ("dateError", "INVALID_FIELD_VALUES_IN_DATE_TIME")
                elif in_request[order] > 1:
                    error = ("conversionUploadError", "DUPLICATE_ORDER_ID")
                else:
                    click = conversion[clicks[0]]
                    scripted = self._click_errors.get(click)
                    if scripted is not None:
                        code, left = scripted
                        error = ("conversionUploadError", code)
                        if left is not None:
                            scripted[1] = left - 1
                            if scripted[1] <= 0:
                                del self._click_errors[click]
                    elif f"{action}|{order}" in self.conversions:
                        error = ("conversionUploadError", "ORDER_ID_ALREADY_IN_USE")
                if error is not None:
                    errors.append(
                        (*error, f"{error[1]} (double)", index, clicks[0] if clicks else None)
                    )
                    results.append({})
                    continue
                self.conversions[f"{action}|{order}"] = conversion
                self.accepted[str(order)] += 1
                results.append(
                    {
                        clicks[0]: conversion[clicks[0]],
                        "conversionAction": action,
                        "conversionDateTime": conversion["conversionDateTime"],
                    }
                )
        return results, errors


def _failure(errors: list[tuple[Any, ...]], version: str, request_id: str) -> dict[str, Any]:
    out = []
    for family, code, message, index, *field in errors:
        error: dict[str, Any] = {"errorCode": {family: code}, "message": message}
        if index is not None:
            path: list[dict[str, Any]] = [{"fieldName": "conversions", "index": index}]
            if field and field[0]:
                path.append({"fieldName": field[0]})
            error["location"] = {"fieldPathElements": path}
        out.append(error)
    return {
        "@type": f"type.googleapis.com/google.ads.googleads.{version}.errors.GoogleAdsFailure",
        "errors": out,
        "requestId": request_id,
    }


def _rpc(
    status: int, message: str, errors: list[tuple[Any, ...]], version: str, request_id: str
) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
            "details": [_failure(errors, version, request_id)] if errors else [],
        }
    }


def _handler_for(double: GoogleAdsDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, body: Any, headers: dict[str, str]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in headers.items():
                self.send_header(name, value)
            try:
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up waiting (a ``timeout`` fault): there is no one to answer,
                # and the server's default would print the error in the test run's output.
                self.close_connection = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            if self.path == "/token":
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                status, token_answer, hold = double._token(form)
                if hold:
                    time.sleep(hold)
                self._reply(status, token_answer, {})
                return
            found = _PATH.match(self.path)
            if found is None:
                self._reply(
                    404, {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}}, {}
                )
                return
            request_id = secrets.token_urlsafe(16)
            try:
                body: Any = json.loads(raw or b"null")
            except ValueError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer, hold, extra = double._upload(
                found.group(1), found.group(2), headers, body, request_id
            )
            if status == DROP:
                self.close_connection = True
                self.connection.close()
                return
            if hold:
                time.sleep(hold)
            self._reply(status, answer, {"request-id": request_id, **extra})

    return Handler
