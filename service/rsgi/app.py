"""The RSGI application: kervan's fast routes from memory, everything else through the bridge.

``__rsgi_init__`` and ``__rsgi_del__`` run the ASGI app's lifespan (the runtime's start and
close) with granian's own lifespan driver, so start-up and shut-down behave as under ASGI: a
failed start-up logs granian's "ASGI lifespan startup failed" with the app's message (the cause,
with its traceback) and ends the worker process with status 1.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

from granian.asgi import LifespanProtocol
from granian.log import logger as granian_logger
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from core.ratelimit import Decision
from native.edgepath import FastFront, fast_front
from service import inline
from service.clientip import resolve_client_ip
from service.edge import Edge
from service.fast_routes import FastRequest, FastRoute, Header
from service.logging import request_id_var
from service.rsgi.bridge import AsgiBridge, str_headers
from service.rsgi.scope import peer_host, raw_headers


def _router(app: Starlette) -> ASGIApp:
    """The app behind its edge: the general route of a request the edge already entered."""

    async def general(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app
        if app.middleware_stack is None:
            app.middleware_stack = app.build_middleware_stack()
        await app.middleware_stack(scope, receive, send)

    return general


#: Header lists held in their str form at most (answers of changed rules drop out).
_MAX_CONVERTED = 256


def _has_body(headers: Any) -> bool:
    return "content-length" in headers or "transfer-encoding" in headers


class KervanRsgi:
    """An RSGI application serving the ASGI ``app``; with ``edge`` (the app's), the edge's fast
    routes are answered here without the bridge.

    ``front`` (with an edge) is the compiled target granian serves (``native/_edgepath.pyx``):
    it answers the common case of a fast route itself, and hands everything else here."""

    def __init__(self, app: ASGIApp, edge: Edge | None = None, root_path: str = "") -> None:
        self.app = app
        self.edge = edge
        self.front: FastFront | None = None
        if edge is not None:
            self.front = fast_front(self, self._carry_on, request_id_var, FastRequest)
            inline.install()
            edge.on_bind.append(self._bound)
        self.lifespan = LifespanProtocol(app)  # type: ignore[no-untyped-call]
        self.bridge = AsgiBridge(app, self.lifespan.state, root_path)
        self._router = _router(app) if edge is not None and isinstance(app, Starlette) else None
        #: granian embedded in a running loop (tests): start-up runs as a task requests wait for.
        self.starting: asyncio.Task[None] | None = None
        #: id of a header list -> (the list, kept alive so the id stays its own; its str form)
        self._str_lists: dict[int, tuple[list[Header], list[tuple[str, str]]]] = {}
        self.stopping: asyncio.Task[None] | None = None

    def _converted(self, headers: list[Header]) -> list[tuple[str, str]]:
        """``headers`` as RSGI takes them, converted once per list: a fast route's prebuilt
        fields and the edge's fixed ones are the same list objects answer after answer."""
        held = self._str_lists.get(id(headers))
        if held is not None and held[0] is headers:
            return held[1]
        if len(self._str_lists) >= _MAX_CONVERTED:
            self._str_lists.clear()
        converted = str_headers(headers)
        self._str_lists[id(headers)] = (headers, converted)
        return converted

    def _bound(self, up: bool) -> None:
        """The edge started (or stopped) serving: the front takes its state (or steps back)."""
        assert self.edge is not None and self.front is not None
        settings = self.edge.front_settings() if up else None
        if settings is None:
            self.front.disable()
            return
        proxies = self.edge.trusted_proxies
        resolve: Callable[[str, Any], str] | None = None
        if proxies:

            def resolve(client: str, headers: Any) -> str:
                forwarded = {"client": (peer_host(client), ""), "headers": raw_headers(headers)}
                return resolve_client_ip(forwarded, proxies)

        self.front.configure(**settings, resolve_ip=resolve)

    async def _carry_on(
        self,
        scope: Any,
        protocol: Any,
        path: str,
        fast: FastRoute,
        headers: Any,
        started: float,
        decided: Decision | None,
    ) -> None:
        """A fast route's request the front began and handed over (see ``_fast``)."""
        assert self.edge is not None
        await self._fast(self.edge, fast, scope, path, headers, protocol, started, decided)

    # --- lifespan ----------------------------------------------------------------------------
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.is_running():
            self.starting = loop.create_task(self._startup())
            return
        try:
            loop.run_until_complete(self._startup())
        except RuntimeError:
            sys.exit(1)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.is_running():
            self.stopping = loop.create_task(self.lifespan.shutdown())  # type: ignore[no-untyped-call]
            return
        loop.run_until_complete(self.lifespan.shutdown())  # type: ignore[no-untyped-call]

    async def _startup(self) -> None:
        await self.lifespan.startup()  # type: ignore[no-untyped-call]
        if self.lifespan.interrupt:
            granian_logger.error("ASGI lifespan startup failed", exc_info=self.lifespan.exc)
            raise RuntimeError("ASGI lifespan startup failed")

    # --- requests ----------------------------------------------------------------------------
    async def __call__(self, scope: Any, protocol: Any) -> None:
        if self.starting is not None:
            await self.starting
        if scope.proto != "http":
            await self.bridge.websocket(scope, protocol)
            return
        edge = self.edge
        if edge is not None and scope.method == "GET":
            started = time.perf_counter()
            # Each read of the RSGI scope's path and headers builds a new object: read once.
            path = scope.path
            fast = edge.fast_routes.get(path)
            if fast is not None:
                headers = scope.headers
                # A GET with a body takes the general way, which ends its body cleanly.
                if not _has_body(headers):
                    await self._fast(edge, fast, scope, path, headers, protocol, started)
                    return
        await self.bridge.http(scope, protocol)

    async def _fast(
        self,
        edge: Edge,
        fast: FastRoute,
        scope: Any,
        path: str,
        headers: Any,
        protocol: Any,
        started: float,
        decided: Decision | None = None,
    ) -> None:
        """The edge's steps for a fast route, answered with ``response_bytes``. ``decided``:
        the app-wide rate limit's decision, when the front took it already."""
        peer = peer_host(scope.client)
        if edge.trusted_proxies:
            forwarded = {"client": (peer, ""), "headers": raw_headers(headers)}
            ip = resolve_client_ip(forwarded, edge.trusted_proxies)
        else:
            ip = peer
        passage = edge.enter("GET", path, headers.get("x-request-id"), ip, started)
        origin = headers.get("origin")
        if origin is not None:
            edge.cross_origin(passage, origin.encode("latin-1"))
        general_scope = None
        try:
            refused = await edge.screen(
                passage,
                headers.get("accept-language"),
                lambda: raw_headers(headers),
                decided=decided,
            )
            if refused is not None:
                answer = str_headers(edge.answer_headers(passage, refused))
                passage.answered = True
                protocol.response_bytes(passage.status, answer, refused.body)
                return
            reply = edge.fast_answer(passage, fast, FastRequest(scope.query_string, headers))
            if reply is not None:
                own, fields, fixed = edge.fast_parts(passage, reply)
                answer = [*self._converted(own), *str_headers(fields), *self._converted(fixed)]
                passage.answered = True
                protocol.response_bytes(reply.status, answer, reply.body)
                return
            # Not held in memory: the general route answers, the request already entered.
            exchange = self.bridge.exchange(scope, protocol)
            general_scope = exchange.scope
            sender = edge.sender(passage, general_scope, exchange.send, None)
            try:
                await edge.dispatch(
                    passage, general_scope, exchange.receive, sender, self._router or self.app
                )
            except Exception as exc:
                if not passage.answered:
                    await edge.fail(passage, sender, exchange.send, exc)
            finally:
                exchange.finish()
        except Exception as exc:
            if not passage.answered:
                status, fields, content = edge.failure(passage, exc)
                passage.status = status
                passage.answered = True
                finished = edge.finish_headers({}, fields, passage.extra)
                protocol.response_bytes(status, str_headers(finished), content)
        finally:
            edge.leave(passage, general_scope)
