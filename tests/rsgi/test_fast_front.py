"""The compiled RSGI front (``native/_edgepath.pyx``) against the Python RSGI path it stands in
front of: the same requests to two apps with the same settings, one served by ``KervanRsgi``
itself and one by its ``front``, give the same answers, access log lines and metrics; the
cases the front hands over (a rate-limit refusal, degrade mode's shedding, a route without an
answer in memory, a handler that raises, a GET with a body) included."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from granian._futures import _future_watcher_wrapper as future_watcher_wrapper
from granian.asgi import _callback_wrapper as asgi_callback_wrapper
from granian.constants import Interfaces
from granian.rsgi import _callback_wrapper as rsgi_callback_wrapper

from native.edgepath import AsgiFront, FastFront
from service import access_log as access_log_module
from service import inline
from service.app import asgi_front, create_app
from service.db import Database
from service.db.migrate import migrate
from service.fast_routes import FastRequest
from service.metrics import HTTP
from service.rsgi import KervanRsgi
from service.settings import Settings
from service.speculation.metrics import RULES as SERVED
from service.speculation.serving import FastRules
from tests.rsgi.test_rsgi_bridge import embedded

RULES_PATH = "/perf/speculation/dynamic"
RULES = f"{RULES_PATH}?seg=en-d"
ORIGIN = "https://shop.example"
VARYING = {"date", "x-request-id"}
Answer = tuple[int, list[tuple[str, str]], bytes]


def _comparable(response: httpx.Response, *, ordered: bool = True) -> Answer:
    headers = []
    for name, value in response.headers.multi_items():
        if name in VARYING:
            continue
        # Seconds to a full bucket or to the next unit: when, not what, was counted.
        if name == "ratelimit":
            value = re.sub(r";t=\d+", ";t=N", value)
        elif name == "retry-after":
            value = "N"
        headers.append((name, value))
    content = re.sub(rb'"retry_after":\d+', b'"retry_after":N', response.content)
    # Unordered for the first request only: whether it finds the rules computed already (at
    # start-up) is a matter of timing, and a fast answer places CSP where the general route
    # does not.
    return response.status_code, headers if ordered else sorted(headers), content


@asynccontextmanager
async def served(
    settings: Settings, compiled: bool, log_path: Path, interface: str = "rsgi"
) -> AsyncIterator[tuple[httpx.AsyncClient, KervanRsgi]]:
    """The app under the front (``compiled``) or the Python path, over ``interface``; JSON
    access lines to ``log_path`` (written when the app stops)."""
    db = Database(settings.database_url)
    await migrate(db)
    await db.dispose()
    app = create_app(settings)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    app.edge.access_log = access_log_module.AccessLog(fd)
    rsgi = KervanRsgi(app, app.edge)
    target: Any
    if interface == "asgi":
        target = asgi_front(app) if compiled else app
    else:
        target = rsgi.front if compiled else rsgi
    try:
        async with (
            embedded(target, Interfaces.ASGI if interface == "asgi" else Interfaces.RSGI) as at,
            httpx.AsyncClient(base_url=f"http://{at}", timeout=10) as client,
        ):
            yield client, rsgi
        if interface == "rsgi":
            # granian's stop runs the lifespan's end as a task of this loop: the access
            # log's last lines are written then.
            assert rsgi.stopping is not None
            await asyncio.wait_for(rsgi.stopping, 30)
    finally:
        os.close(fd)


@pytest.fixture
def json_access_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Access lines written by the access log itself (the production configuration)."""
    monkeypatch.setattr(access_log_module, "json_logs_configured", lambda: True)
    logger = logging.getLogger(access_log_module.LOGGER)
    monkeypatch.setattr(logger, "level", logging.INFO)


def _lines(path: Path) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [line for line in lines if line.get("logger") == "kervan.access"]


def seen_index(seen: list[tuple[str, Any]], name: str) -> int:
    return [n for n, _ in seen].index(name)


def _requests_of(route: str) -> dict[tuple[str, str, int], int]:
    return {k: v for k, v in HTTP.requests.items() if k[1] == route}


async def _session(client: httpx.AsyncClient) -> list[tuple[str, Any]]:
    """One request of each kind, then the rate limit's refusals."""
    seen: list[tuple[str, Any]] = []
    first = await client.get(RULES)  # computes the answer (general route), then held
    seen.append(("first", _comparable(first, ordered=False)))
    etag = first.headers["etag"]
    cases: list[tuple[str, dict[str, str], str]] = [
        ("plain", {}, RULES),
        ("cors", {"Origin": ORIGIN}, RULES),
        ("foreign-own-id", {"Origin": "https://other.example", "X-Request-ID": "abc-1.2:3"}, RULES),
        ("bad-id", {"X-Request-ID": "not a valid id"}, RULES),
        ("not-modified", {"If-None-Match": etag, "Origin": ORIGIN}, RULES),
        ("unknown-segment", {}, f"{RULES_PATH}?seg=zz-q"),
        ("other-query", {}, f"{RULES}&mode=walk"),
        ("health", {"Origin": ORIGIN}, "/health"),
    ]
    for name, headers, url in cases:
        response = await client.get(url, headers=headers)
        seen.append((name, _comparable(response)))
        if name == "foreign-own-id":
            assert response.headers["x-request-id"] == "abc-1.2:3"
        if name == "bad-id":
            assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    with_body = await client.request("GET", RULES, content=b"x" * 10)
    seen.append(("with-body", _comparable(with_body)))
    for i in range(4):
        refused = await client.get(RULES, headers={"Accept-Language": "de"})
        seen.append((f"after-{i}", _comparable(refused)))
    return seen


@pytest.mark.parametrize("interface", ["rsgi", "asgi"])
async def test_the_front_answers_logs_and_counts_as_the_python_path(
    make_settings: Callable[..., Settings], tmp_path: Path, json_access_lines: None, interface: str
) -> None:
    results: dict[bool, Any] = {}
    for compiled in (False, True):
        settings = make_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / ('front' if compiled else 'python')}.db",
            allowed_origins=[ORIGIN],
            ratelimit_default_policy="public.ip",
            # Refilled slowly: no unit comes back in the middle of a session.
            ratelimit_policies="public.ip=12/hour burst 12",
        )
        log_path = tmp_path / f"access-{compiled}.log"
        before = _requests_of(RULES_PATH)
        rules_before = list(SERVED.of("en-d"))
        async with served(settings, compiled, log_path, interface) as (client, _):
            seen = await _session(client)
        after = _requests_of(RULES_PATH)
        counted = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        rules = [a - b for a, b in zip(SERVED.of("en-d"), rules_before, strict=True)]
        results[compiled] = (seen, (counted, rules), _lines(log_path))

    (py_seen, py_counted, py_lines), (c_seen, c_counted, c_lines) = results[False], results[True]
    for (name, python), (_, front) in zip(py_seen, c_seen, strict=True):
        assert front == python, name
    statuses = [answer[0] for _, answer in c_seen]
    assert {200, 304, 429} <= set(statuses)
    assert statuses[seen_index(c_seen, "unknown-segment")] in (400, 422)
    assert c_counted == py_counted
    assert c_counted[0][("GET", RULES_PATH, 200)] >= 5
    assert c_counted[1][0] >= 5 and c_counted[1][1] == 1  # 200s and 304s of the rules

    def stable(line: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in line.items() if k not in ("ts", "duration_ms", "request_id")}

    assert [stable(line) for line in c_lines] == [stable(line) for line in py_lines]
    assert len(c_lines) == len(c_seen)
    own_id = [line for line in c_lines if line["request_id"] == "abc-1.2:3"]
    assert len(own_id) == 1 and own_id[0]["path"] == RULES_PATH


async def test_shedding_and_a_failing_handler_are_answered_by_the_python_path(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(degrade_mode="on")
    async with served(settings, True, tmp_path / "access.log") as (client, rsgi):
        assert (await client.get(RULES)).status_code == 200  # the answer is held from now on
        shed = await client.get(RULES, headers={"Sec-Purpose": "prefetch"})
        assert shed.status_code == 503
        assert orjson.loads(shed.content)["error"]["code"] == "overloaded"
        assert "retry-after" in shed.headers
        served_anyway = await client.get(RULES)  # not a prefetch: never shed
        assert served_anyway.status_code == 200
    assert rsgi.front is not None

    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    async with served(settings, True, tmp_path / "access-b.log") as (client, rsgi):
        assert (await client.get(RULES)).status_code == 200
        calls: list[str] = []

        def broken(self: FastRules, request: Any) -> None:
            calls.append(request.query)
            raise RuntimeError("broken handler")

        monkeypatch.setattr(FastRules, "__call__", broken)
        failed = await client.get(RULES)
    assert failed.status_code == 500
    assert orjson.loads(failed.content)["error"]["code"] == "internal_error"
    assert failed.headers["x-content-type-options"] == "nosniff"
    # Once by the front, once more by the Python path that answers the failure.
    assert calls == ["seg=en-d", "seg=en-d"]


async def test_a_held_reply_is_served_without_its_handler_while_its_answer_is_current(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served(make_settings(), True, tmp_path / "access.log") as (client, rsgi):
        first = await client.get(RULES)  # the general route computes the answer
        route = rsgi.edge.fast_routes[RULES_PATH] if rsgi.edge is not None else None
        assert route is not None and isinstance(route.handler, FastRules)
        # The background refresher's first round (late on a loaded machine, after its kernels'
        # warm-up) would replace the answer held below; holding is what is tested here.
        await route.handler.cache.stop()
        held = await client.get(RULES)  # the handler answers, and holds its reply
        assert first.status_code == held.status_code == 200
        assert list(route.held) == ["seg=en-d"]

        calls: list[str] = []
        handler = FastRules.__call__

        def counted(self: FastRules, request: Any) -> Any:
            calls.append(request.query)
            return handler(self, request)

        monkeypatch.setattr(FastRules, "__call__", counted)
        before = list(SERVED.of("en-d"))
        answers = [await client.get(RULES) for _ in range(3)]
        assert calls == []
        assert {a.content for a in answers} == {held.content}
        entry = route.held["seg=en-d"]
        assert SERVED.of("en-d")[0] == before[0] + 3
        assert SERVED.of("en-d")[2:] == [
            b + 3 * inc for b, inc in zip(before[2:], entry.increments[2:], strict=True)
        ]
        # If-None-Match: the handler decides (here: not modified).
        etag = held.headers["etag"]
        assert (await client.get(RULES, headers={"If-None-Match": etag})).status_code == 304
        assert calls == ["seg=en-d"]
        # A new answer for the segment: the held reply is stale, the handler answers.
        key = ("en-d", entry.key[1])  # type: ignore[index]
        entry.source[key] = dataclasses.replace(entry.source[key], body=b'{"prerender":[]}')
        fresh = await client.get(RULES)
        assert calls == ["seg=en-d", "seg=en-d"]
        assert fresh.content == b'{"prerender":[]}'


@pytest.mark.parametrize("interface", ["rsgi", "asgi"])
async def test_a_fast_answer_runs_inline_and_everything_else_as_a_task(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    interface: str,
) -> None:
    """granian's scheduler, taught the front (``service/rsgi/inline.py``): a fast route's
    answer is given in the loop callback itself, with no task; a request the front hands over
    (here a conditional one, and a route that is not fast) runs as a task, as granian runs any
    request."""
    tasks: list[bool] = []
    handler = FastRules.__call__

    def seen(self: FastRules, request: Any) -> Any:
        tasks.append(asyncio.current_task() is not None)
        return handler(self, request)

    made: list[AsgiFront] = []
    make = asgi_front

    def capturing(app: Any) -> AsgiFront:
        made.append(make(app))
        return made[-1]

    monkeypatch.setitem(globals(), "asgi_front", capturing)
    log = tmp_path / "access.log"
    async with served(make_settings(), True, log, interface) as (client, rsgi):
        assert inline.installed()
        first = await client.get(RULES)  # the general route computes the answer
        assert first.status_code == 200
        monkeypatch.setattr(FastRules, "__call__", seen)
        route = rsgi.edge.fast_routes[RULES_PATH] if rsgi.edge is not None else None
        assert route is not None
        route.held.clear()  # the handler answers again (a held reply would skip it)
        assert (await client.get(RULES)).status_code == 200
        conditional = await client.get(RULES, headers={"If-None-Match": first.headers["etag"]})
        assert conditional.status_code == 304
        assert (await client.get("/health")).status_code == 200
        # The front asked the handler with no task both times (the 304 is its answer too).
        assert tasks == [False, False]
        if interface == "asgi":
            # and sent without waiting: granian's send returned its complete awaitable.
            assert made[0].ready is not None and made[0].ready.__name__ == "PyEmptyAwaitable"

        def failing(self: FastRules, request: Any) -> Any:
            seen(self, request)
            raise RuntimeError("broken handler")

        monkeypatch.setattr(FastRules, "__call__", failing)
        route.held.clear()
        assert (await client.get(RULES)).status_code == 500
    # Handed over: the Python path asked again, in a task, and answered the failure.
    assert tasks == [False, False, False, True]


def test_the_inline_scheduler_takes_only_a_front_served_by_granians_plain_wrappers() -> None:
    """What granian's scheduler is given (its own wrappers, built here as its workers build
    them) decides whether ``take`` may stand in: not behind the access logger, nor under a
    path prefix, nor for any other app."""
    assert inline.install() and inline.install()  # idempotent
    assert inline.installed()

    async def plain(scope: Any, *args: Any) -> None:
        return None

    async def general(*args: Any) -> None:
        return None

    var: ContextVar[str | None] = ContextVar("rid", default=None)
    front = FastFront(plain, general, var, FastRequest, "p", 0)
    asgi = AsgiFront(plain, general, var, FastRequest, "p", 0)
    access_fmt = "%(addr)s %(method)s %(path)s %(status)d"

    def rsgi_served(target: Any, access: str | None = None) -> Any:
        return future_watcher_wrapper(rsgi_callback_wrapper(target, access))

    def asgi_served(target: Any, opts: dict[str, Any], access: str | None = None) -> Any:
        return future_watcher_wrapper(asgi_callback_wrapper(target, opts, {}, access))

    assert inline._front_of(rsgi_served(front)) is front
    assert inline._front_of(asgi_served(asgi, {})) is asgi
    assert inline._front_of(rsgi_served(front, access_fmt)) is None
    assert inline._front_of(asgi_served(asgi, {}, access_fmt)) is None
    assert inline._front_of(asgi_served(asgi, {"url_path_prefix": "/kervan"})) is None
    assert inline._front_of(rsgi_served(plain)) is None
    assert inline._front_of(asgi_served(plain, {})) is None


async def test_the_asgi_front_answers_fast_routes_itself(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(allowed_origins=[ORIGIN])
    db = Database(settings.database_url)
    await migrate(db)
    await db.dispose()
    app = create_app(settings)
    front = asgi_front(app)
    edge_calls: list[str] = []
    http = type(app.edge)._http

    async def counted(self: Any, scope: Any, *args: Any) -> None:
        edge_calls.append(scope["path"])
        await http(self, scope, *args)

    monkeypatch.setattr(type(app.edge), "_http", counted)

    async def get(query: str, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "GET",
            "path": RULES_PATH,
            "raw_path": RULES_PATH.encode(),
            "query_string": query.encode(),
            "headers": headers,
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
            "scheme": "http",
            "http_version": "1.1",
            "root_path": "",
        }
        await front(scope, receive, send)
        return sent

    async with app.router.lifespan_context(app):
        # The general route computes the answer, unless the start-up refresh did already.
        first = await get("seg=en-d", [])
        before = len(edge_calls)
        again = await get("seg=en-d", [(b"origin", ORIGIN.encode())])  # the handler, held
        held = await get("seg=en-d", [(b"x-request-id", b"mine-1")])  # the held reply
        assert len(edge_calls) == before  # both answered by the front
        other = await get("seg=zz-q", [])  # no answer in memory: handed over
    assert edge_calls[before:] == [RULES_PATH]
    assert [m[0]["status"] for m in (first, again, held)] == [200, 200, 200]
    assert held[1]["body"] == first[1]["body"]
    fields = dict(held[0]["headers"])
    assert fields[b"x-request-id"] == b"mine-1"
    assert fields[b"x-content-type-options"] == b"nosniff"
    assert dict(again[0]["headers"])[b"access-control-allow-origin"] == ORIGIN.encode()
    assert other[0]["status"] in (400, 422)
