"""The edge: what every request passes on its way to a route and back, composed once.

One pass per request instead of a middleware stack: request id and client IP, CORS, the app-wide
per-client-IP rate limit, security headers, HTTP metrics and the access log line. Everything that
does not depend on the request (security headers, CORS fields, metric children) is built once and
reused as bytes.

A feature may answer a hot GET path itself (``runtime.fast_routes``, see
``service/fast_routes.py``); fast and general answers carry exactly the same protections.

The pass is cut into steps on a ``Passage`` (enter, screen, the fast answer or the general app,
leave) so that both server interfaces run the same checks: ASGI through ``Edge.__call__``, and
RSGI (``service/rsgi/``), which answers the fast routes straight from granian's protocol object
and hands everything else to the same steps through its ASGI bridge.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.ratelimit import Decision
from service.access_log import AccessLog
from service.clientip import _STATE_KEY, resolve_client_ip
from service.fast_routes import AsgiHeaders, FastReply, FastRequest, FastRoute, Header
from service.logging import get_logger, request_id_var
from service.metrics import HTTP
from service.middleware.cors import EnvelopeCORSMiddleware
from service.middleware.request_body import CLOSE, RequestBody, has_body
from service.middleware.security import API_CSP, CSP_TEMPLATE, csp_nonce
from service.overload.monitor import OverloadMonitor, shed_response
from service.overload.priority import low_priority_kind
from service.ratelimit.headers import policy_item, state_item
from service.ratelimit.http import DEFAULT_EXEMPT, refusal
from service.settings_types import Network

if TYPE_CHECKING:
    from contextvars import Token

    from service.runtime import Runtime

log = get_logger("kervan.errors")

#: A request id a client may choose (matched whole: ``$`` would also pass a trailing newline).
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_UNMATCHED = "<unmatched>"
INTERNAL_ERROR = orjson.dumps(
    {"error": {"code": "internal_error", "message": "internal server error", "details": None}}
)
_INTERNAL_ERROR_HEADERS: list[Header] = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(INTERNAL_ERROR)).encode()),
]
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CORS_ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Request-ID",
    "If-None-Match",
    "X-Consent-Proof",
)
CORS_EXPOSE_HEADERS = ("X-Request-ID", "ETag", "RateLimit", "RateLimit-Policy", "Retry-After")
CORS_MAX_AGE = 600

VARY_ORIGIN: Header = (b"vary", b"Origin")


class RequestIds:
    """Unique ids, cheaply: a random per-process prefix and a counter (32 hex characters)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def next(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFFFFFF:016x}"


class _Cors:
    """CORS with exact origins: simple-request fields here, preflights through Starlette's
    implementation (refusals in the error envelope)."""

    def __init__(self, allowed_origins: Sequence[str]) -> None:
        self.origins = frozenset(allowed_origins)
        self._preflight = EnvelopeCORSMiddleware(
            _no_app,
            allow_origins=list(allowed_origins),
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_ALLOW_HEADERS),
            expose_headers=list(CORS_EXPOSE_HEADERS),
            allow_credentials=True,
            max_age=CORS_MAX_AGE,
        )
        # What Starlette's simple response adds to every response of a cross-origin request.
        self.simple: list[Header] = [
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", ", ".join(CORS_EXPOSE_HEADERS).encode()),
        ]
        self._allowed: dict[bytes, list[Header]] = {}

    def fields(self, origin: bytes) -> list[Header]:
        """The fields for a request from ``origin`` (``Vary: Origin`` goes on every answer)."""
        found = self._allowed.get(origin)
        if found is not None:
            return found
        if origin.decode("latin-1") in self.origins:
            made = [*self.simple, (b"access-control-allow-origin", origin)]
            if len(self._allowed) < 1024:
                self._allowed[origin] = made
            return made
        return self.simple

    async def preflight(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self._preflight.preflight_response(request_headers=Headers(scope=scope))
        await response(scope, receive, send)


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("the CORS helper only answers preflights")


def _str_pairs(headers: Iterable[Header]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


def _merge_vary(headers: list[Header], value: bytes) -> None:
    for i, (name, existing) in enumerate(headers):
        if name.lower() == b"vary":
            if value.lower() not in {v.strip().lower() for v in existing.split(b",")}:
                headers[i] = (name, existing + b", " + value)
            return
    headers.append((b"vary", value))


class Passage:
    """One HTTP request on its way through the edge: who asked, what it is answered, and the
    fields every answer to it carries."""

    __slots__ = (
        "answered",
        "extra",
        "ip",
        "method",
        "path",
        "request_id",
        "route",
        "started",
        "status",
        "token",
    )

    def __init__(
        self,
        method: str,
        path: str,
        request_id: str,
        ip: str,
        started: float,
        token: Token[str | None],
    ) -> None:
        self.method = method
        self.path = path
        self.request_id = request_id
        self.ip = ip
        self.started = started
        self.token = token
        #: Fields added to the answer, whoever gives it.
        self.extra: list[Header] = [(b"x-request-id", request_id.encode())]
        #: The route template the metrics and the log line name (unmatched paths fold into one
        #: label so scanners cannot explode the label set).
        self.route = _UNMATCHED
        self.status = 500
        #: The answer's head went out (an error after it cannot be answered any more).
        self.answered = False


#: Scope key of a WebSocket's ``(receive, send)`` as the server gave them.
TRANSPORT_KEY = "kervan.transport"


class Edge:
    def __init__(
        self,
        *,
        hsts: bool,
        allowed_origins: Sequence[str],
        trusted_proxies: Sequence[Network],
        access_log: AccessLog,
        fast_routes: Sequence[FastRoute] = (),
        exempt: Sequence[str] = DEFAULT_EXEMPT,
        own_cors: Sequence[str] = (),
    ) -> None:
        self.trusted_proxies = list(trusted_proxies)
        self.access_log = access_log
        self.exempt = tuple(exempt)
        #: Paths whose routes answer CORS themselves (per-site origins: ``/t/sync``).
        self.own_cors = tuple(own_cors)
        self.ids = RequestIds()
        self.cors = _Cors(allowed_origins)
        security = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
            (b"x-frame-options", b"DENY"),
        ]
        if hsts:
            security.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
        self.security = security
        self.api_csp = (b"content-security-policy", API_CSP.encode())
        #: What a fast answer carries after its own fields and the request's.
        self.fast_tail: list[Header] = [self.api_csp, *self.security, VARY_ORIGIN]
        self.runtime: Runtime | None = None
        self.policy = ""
        #: Fast routes of the route modules; features add theirs to the runtime's.
        self.static_routes = {route.template: route for route in fast_routes}
        self.fast_routes: dict[str, FastRoute] = dict(self.static_routes)
        #: Degrade mode: low-priority requests are refused while it sheds.
        self.overload: OverloadMonitor | None = None
        self._policy_items: dict[str, bytes] = {}
        #: Told of every bind (True) and unbind (False): the compiled RSGI front
        #: (``service/rsgi/``) takes the edge's state from ``front_settings``.
        self.on_bind: list[Callable[[bool], None]] = []

    def bind(self, runtime: Runtime) -> None:
        """Start serving with the runtime's limiter, policy and fast routes."""
        self.runtime = runtime
        self.policy = runtime.settings.ratelimit_default_policy
        self._policy_items.clear()
        self.fast_routes = {**self.static_routes, **runtime.fast_routes}
        try:
            self.overload = runtime.facility(OverloadMonitor)
        except (LookupError, AttributeError):  # a runtime without the feature list (tests)
            self.overload = None
        self.access_log.configure()
        for hook in self.on_bind:
            hook(True)

    def unbind(self) -> None:
        self.runtime = None
        self.overload = None
        self.fast_routes = dict(self.static_routes)
        for hook in self.on_bind:
            hook(False)

    def front_settings(self) -> dict[str, Any] | None:
        """What the compiled front needs to take these steps itself for a fast route, or
        ``None`` when it cannot (a rate-limit store that is not in-process: its check awaits)."""
        runtime = self.runtime
        limiter = runtime.ratelimiter if runtime is not None else None
        check = None
        item = ""
        shown = False
        if self.policy and limiter is not None:
            if not limiter.synchronous:
                return None
            policy = limiter.catalog.policy(self.policy)
            check, item, shown = limiter.check_now, policy_item(policy), not policy.shadow
        return {
            "routes": self.fast_routes,
            "http": HTTP,
            "overload": self.overload,
            "access_log": self.access_log,
            "lines": self.access_log.lines,
            "exempt": self.exempt,
            "own_cors": self.own_cors,
            "limiter_check": check,
            "policy": self.policy,
            "policy_item": item,
            "policy_shown": shown,
            "origins": self.cors.origins,
            "cors_simple": _str_pairs(self.cors.simple),
            "tail": _str_pairs(self.fast_tail),
        }

    # --- the request (ASGI) ---------------------------------------------------------------
    async def carry_on(
        self, scope: Scope, receive: Receive, send: Send, app: ASGIApp, decided: Decision | None
    ) -> None:
        """A fast route's request the compiled ASGI front began and handed over."""
        await self._http(scope, receive, send, app, decided)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send, app)
        elif kind == "websocket":
            request_id = self._request_id(scope)
            token = request_id_var.set(request_id)
            state = scope.setdefault("state", {})
            state[_STATE_KEY] = resolve_client_ip(scope, self.trusted_proxies)
            state["request_id"] = request_id
            # The server's own channels, for a handler that sends or reads many frames without
            # the framework's per-frame checks (``service.support.session``).
            scope[TRANSPORT_KEY] = (receive, send)
            try:
                await app(scope, receive, send)
            finally:
                request_id_var.reset(token)
        else:
            await app(scope, receive, send)

    def _request_id(self, scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                return self.request_id(value.decode("latin-1"))
        return self.ids.next()

    async def _http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        app: ASGIApp,
        decided: Decision | None = None,
    ) -> None:
        """One HTTP request through the edge's steps; ``decided``: the app-wide rate limit's
        decision for it, taken already by the compiled front (``native/_edgepath.pyx``)."""
        started = time.perf_counter()
        incoming = origin = preflight_method = accept_language = None
        length = coding = expect = None
        for name, value in scope["headers"]:
            # The first of a repeated field counts, as Starlette's ``Headers`` reads it.
            if name == b"x-request-id":
                incoming = incoming or value
            elif name == b"origin":
                origin = origin or value
            elif name == b"access-control-request-method":
                preflight_method = preflight_method or value
            elif name == b"accept-language":
                accept_language = accept_language or value
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                coding = value
            elif name == b"expect":
                expect = value
        method: str = scope["method"]
        path: str = scope["path"]
        passage = self.enter(
            method,
            path,
            incoming.decode("latin-1") if incoming is not None else None,
            resolve_client_ip(scope, self.trusted_proxies),
            started,
        )
        preflight = False
        if origin is not None:
            if method == "OPTIONS" and preflight_method is not None:
                preflight = self.cross_origin(passage, origin, preflight=True)
                if preflight:
                    app = self.cors.preflight
            else:
                self.cross_origin(passage, origin)

        # A body the route leaves unread must not be taken for the next request on the
        # connection (service/middleware/request_body.py).
        body = None
        if has_body(length, coding):
            body = RequestBody(receive, length, expect)
            receive = body.receive
        sender = self.sender(passage, scope, send, body)

        fast = self.fast_routes.get(path) if method == "GET" else None
        reply = None
        try:
            refused = await self.screen(
                passage,
                accept_language.decode("latin-1") if accept_language is not None else None,
                lambda: scope["headers"],
                limit=not preflight,
                decided=decided,
            )
            if refused is not None:
                app, fast = refused, None
            if fast is not None:
                request = FastRequest(
                    scope["query_string"].decode("latin-1"), AsgiHeaders(scope["headers"])
                )
                reply = self.fast_answer(passage, fast, request)
            if reply is not None:
                headers = self.fast_headers(passage, reply)
                if body is not None and not await body.reusable():
                    headers.append(CLOSE)
                passage.answered = True
                await send(
                    {"type": "http.response.start", "status": reply.status, "headers": headers}
                )
                await send({"type": "http.response.body", "body": reply.body})
            else:
                await self.dispatch(passage, scope, receive, sender, app)
        except Exception as exc:
            if not passage.answered:
                await self.fail(passage, sender, send, exc)
        finally:
            self.leave(passage, scope if reply is None else None)

    # --- the steps (both interfaces) ------------------------------------------------------
    def request_id(self, incoming: str | None) -> str:
        """The client's request id when it is a sane one, else a new one."""
        if incoming is not None and VALID_REQUEST_ID.fullmatch(incoming):
            return incoming
        return self.ids.next()

    def enter(
        self, method: str, path: str, incoming_id: str | None, ip: str, started: float
    ) -> Passage:
        """A request arrives (``ip`` as ``resolve_client_ip`` found it): its id is set for the
        logs, and it counts as in flight until ``leave``."""
        request_id = self.request_id(incoming_id)
        passage = Passage(method, path, request_id, ip, started, request_id_var.set(request_id))
        HTTP.in_flight += 1
        return passage

    def cross_origin(self, passage: Passage, origin: bytes, *, preflight: bool = False) -> bool:
        """The CORS fields of a request with ``Origin`` (unless its route answers CORS itself).
        Returns whether the edge answers it as a preflight."""
        if self.own_cors and passage.path.startswith(self.own_cors):
            return False
        if preflight:
            return True
        passage.extra += self.cors.fields(origin)
        return False

    async def screen(
        self,
        passage: Passage,
        accept_language: str | None,
        headers: Callable[[], Iterable[Header]],
        *,
        limit: bool = True,
        decided: Decision | None = None,
    ) -> Response | None:
        """The refusal that answers instead of the route (the app-wide rate limit, degrade
        mode's shedding), or ``None``; the limit's fields are added to the passage.
        ``decided``: the app-wide limit's decision for this request, taken already (by the
        compiled front, ``native/_edgepath.pyx``)."""
        refused = None
        if limit and not passage.path.startswith(self.exempt):
            refused = await self._limit(passage.ip, accept_language, passage.extra, decided)
        overload = self.overload
        if overload is not None and overload.shedding:
            kind = low_priority_kind(passage.path, headers(), passage.method)
            if kind is not None:
                refused = shed_response(overload, kind)
        return refused

    def fast_answer(
        self, passage: Passage, fast: FastRoute, request: FastRequest
    ) -> FastReply | None:
        """The fast route's answer from memory, or ``None`` to take the general route."""
        reply = fast.handler(request)
        if reply is not None:
            passage.route = fast.template
            passage.status = reply.status
        return reply

    def fast_parts(
        self, passage: Passage, reply: FastReply
    ) -> tuple[list[Header], list[Header], list[Header]]:
        """A fast answer's fields in order: the reply's own (prebuilt), the request's, and
        the edge's (fixed: fast replies carry no CSP or Vary of their own)."""
        return reply.headers, passage.extra, self.fast_tail

    def fast_headers(self, passage: Passage, reply: FastReply) -> list[Header]:
        own, request, edge = self.fast_parts(passage, reply)
        return [*own, *request, *edge]

    def answer_headers(
        self, passage: Passage, response: Response, scope: Scope | None = None
    ) -> list[Header]:
        """The fields of a whole ``Response`` the interface sends itself (a refusal)."""
        passage.status = response.status_code
        return self.finish_headers(scope or {}, list(response.raw_headers), passage.extra)

    def failure(self, passage: Passage, exc: Exception) -> tuple[int, list[Header], bytes]:
        """The envelope for an error nothing answered yet, logged here with the request id:
        Starlette's error middleware logs (and answers) what the routes raise, anything that
        failed before it is logged here, and the client still gets the envelope instead of a
        dropped connection."""
        log.exception("unhandled error on %s %s", passage.method, passage.path, exc_info=exc)
        return 500, list(_INTERNAL_ERROR_HEADERS), INTERNAL_ERROR

    def sender(self, passage: Passage, scope: Scope, send: Send, body: RequestBody | None) -> Send:
        """``send`` for the general app: the edge's fields go on the answer's head."""

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                passage.answered = True
                passage.status = message["status"]
                message["headers"] = self.finish_headers(
                    scope, list(message.get("headers", ())), passage.extra
                )
                if body is not None and not await body.reusable():
                    message["headers"].append(CLOSE)
            await send(message)

        return send_with_fields

    async def dispatch(
        self, passage: Passage, scope: Scope, receive: Receive, sender: Send, app: ASGIApp
    ) -> None:
        """The general app (the router) answers, through ``sender``."""
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state[_STATE_KEY] = passage.ip
        state["request_id"] = passage.request_id
        await app(scope, receive, sender)

    async def fail(self, passage: Passage, sender: Send, send: Send, exc: Exception) -> None:
        status, headers, content = self.failure(passage, exc)
        await sender({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def leave(self, passage: Passage, scope: Scope | None) -> None:
        """The answer is out: metrics, degrade mode's latency, the access log line.
        ``scope`` is the general app's (its matched route names the request)."""
        if scope is not None:
            template = getattr(scope.get("route"), "path", None)
            if isinstance(template, str):
                passage.route = template
        HTTP.in_flight -= 1
        elapsed = time.perf_counter() - passage.started
        HTTP.observe(passage.method, passage.route, passage.status, elapsed)
        if self.overload is not None:
            self.overload.record(elapsed)
        self.access_log.record(
            passage.method,
            passage.path,
            passage.route,
            passage.status,
            elapsed,
            passage.ip,
            passage.request_id,
        )
        request_id_var.reset(passage.token)

    async def _limit(
        self,
        ip: str,
        accept_language: str | None,
        extra: list[Header],
        decided: Decision | None = None,
    ) -> Response | None:
        """The app-wide per-IP policy: the refusal to send, or ``None`` with its fields added."""
        runtime = self.runtime
        limiter = runtime.ratelimiter if runtime is not None else None
        if not self.policy or limiter is None:
            return None
        if decided is not None:
            decision = decided
        elif limiter.synchronous:
            decision = limiter.check_now(self.policy, ip)
        else:
            decision = await limiter.check(self.policy, ip)
        if not decision.allowed:
            refused = refusal([decision], accept_language)
            if refused is not None:
                return refused
        if not decision.policy.shadow and not decision.degraded:
            item = self._policy_items.get(decision.policy.name)
            if item is None:
                item = self._policy_items[decision.policy.name] = policy_item(
                    decision.policy
                ).encode()
            extra.append((b"ratelimit-policy", item))
            extra.append((b"ratelimit", state_item(decision).encode()))
        return None

    def finish_headers(
        self, scope: Scope, headers: list[Header], extra: list[Header]
    ) -> list[Header]:
        csp = content_type = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-security-policy":
                csp = value
            elif lowered == b"content-type":
                content_type = value
        if csp is None:
            if content_type is not None and content_type.startswith(b"text/html"):
                policy = CSP_TEMPLATE.format(nonce=csp_nonce(scope)).encode()
                headers.append((b"content-security-policy", policy))
            else:
                headers.append(self.api_csp)
        # A public answer (the route says "Access-Control-Allow-Origin: *": images, IIIF,
        # static files) is the same for every origin: it keeps its "*", and needs no
        # "Vary: Origin", so a shared cache holds one copy instead of one per site.
        public = any(
            name.lower() == b"access-control-allow-origin" and value == b"*"
            for name, value in headers
        )
        if public:
            extra = [h for h in extra if not h[0].startswith(b"access-control-")]
        # Otherwise CORS fields replace a route's own (one value only, or browsers refuse the
        # answer). A route's own RateLimit fields come first; the app-wide policy's follow as a
        # second field line, which HTTP reads as one list.
        replaced = {name for name, _ in extra if name.startswith(b"access-control-")}
        if replaced:
            headers = [h for h in headers if h[0].lower() not in replaced]
        headers += extra
        headers += self.security
        if not public:
            # The CORS fields depend on Origin (as Starlette's CORS does).
            _merge_vary(headers, b"Origin")
        return headers
