"""The site script in a real browser: headless Chromium, a customer page, the kervan app.

Three servers on 127.0.0.1: the kervan app (``kervan serve``, SQLite), a customer site serving
``tests/tracking/pages/site.html`` (its origin is the site's domain), and a gateway the page
loads the script through, so that the script's API origin is the gateway: it forwards to the app
and records every ``POST /t/sync`` body and answer, and can answer 503 itself to play a failing
ingest. What the script sent is read from those bodies, and what the real ingest made of it
(every event accepted, stored once, sessions and intents) from the database.

Chromium is driven over the DevTools protocol, one isolated browser context per test. Skipped,
with the reason shown, when no Chromium is installed - unless KERVAN_REQUIRE_SERVICES=1, which
turns the missing browser into a failure (CI installs the ``chromium`` package).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from service.db import Database
from service.tracking.sites import create_site
from tests.cli_process import spawn_kervan
from tests.settings import TEST_ENV

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PAGES = Path(__file__).resolve().parent / "pages"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1000,900",
]
DEADLINE = 45.0
REF = re.compile(r"^[A-Z2-9]{6}$")
T = TypeVar("T")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    message = "headless Chromium is not installed (apt-get install chromium)"
    if TEST_ENV.require_services:
        pytest.fail(f"KERVAN_REQUIRE_SERVICES=1 and {message}", pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _until(what: str, probe: Callable[[], T | None], deadline: float = DEADLINE) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after a deadline
    (a bound on a hang, not a speed requirement)."""
    end = time.monotonic() + deadline
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# ------------------------------------------------------------------ gateway and customer site


@dataclass
class Sync:
    """One ``POST /t/sync`` the browser sent, and the status it was answered with."""

    body: dict[str, Any]
    status: int
    content_type: str
    origin: str | None
    at: float
    answer: dict[str, Any]

    @property
    def ids(self) -> list[str]:
        return [event["id"] for event in self.body["events"]]


@dataclass
class Gateway:
    """Between the page and the app: records syncs, fails them on demand."""

    app_origin: str
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    syncs: list[Sync] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    #: While set, POST /t/sync answers this status (with Retry-After: 1) without forwarding.
    failing: int | None = None
    lock: threading.Condition = field(default_factory=threading.Condition)

    def reset(self) -> None:
        with self.lock:
            self.syncs.clear()
            self.requests.clear()
            self.failing = None

    def wait(self, what: str, check: Callable[[list[Sync]], bool]) -> list[Sync]:
        def probe() -> list[Sync] | None:
            with self.lock:
                syncs = list(self.syncs)
            return syncs if check(syncs) else None

        return _until(what, probe)

    def answered(self) -> list[Sync]:
        with self.lock:
            return [sync for sync in self.syncs if sync.status == 200]

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.requests.append((method, path))
        origin = headers.get("origin")
        if path == "/t/sync" and method == "POST":
            status, out_headers, out = self._sync(headers, body)
            sync = Sync(
                json.loads(body),
                status,
                headers.get("content-type", ""),
                origin,
                time.monotonic(),
                json.loads(out) if out else {},
            )
            with self.lock:
                self.syncs.append(sync)
                self.lock.notify_all()
            return status, out_headers, out
        forwarded = self.client.request(
            method,
            self.app_origin + path,
            headers=_forwarded(headers),
            content=body or None,
        )
        return forwarded.status_code, _answered(forwarded), forwarded.content

    def _sync(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        origin = headers.get("origin", "")
        cors = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": "Retry-After",
            "Content-Type": "application/json",
        }
        if self.failing is not None:
            error = {"error": {"code": "unavailable", "message": "try later", "details": None}}
            return self.failing, {**cors, "Retry-After": "1"}, json.dumps(error).encode()
        answer = self.client.post(
            self.app_origin + "/t/sync", headers=_forwarded(headers), content=body
        )
        return answer.status_code, _answered(answer), answer.content


_HOP = frozenset({"host", "content-length", "accept-encoding", "connection"})


def _forwarded(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in _HOP}


def _answered(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in ("content-encoding",)}


def _serve(handle: Callable[[str, str, dict[str, str], bytes], Any]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out_headers, out = handle(self.command, self.path, headers, body)
            self.send_response(status)
            for name, value in out_headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)

        do_GET = do_POST = do_OPTIONS = do_HEAD = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class World:
    app: str
    site: str
    api: str
    site_id: int
    site_key: str
    db_path: Path
    gateway: Gateway

    def page(self, query: str = "", path: str = "/site.html") -> str:
        return f"{self.site}{path}{'?' + query if query else ''}"

    def stored_events(self) -> list[dict[str, Any]]:
        """The events the ingest stored for the site."""
        with sqlite3.connect(self.db_path) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT event_id, kind, name, path, props FROM track_events WHERE site_id = ?",
                (self.site_id,),
            ).fetchall()
        return [dict(row) for row in rows]

    def stored(self, sql: str) -> list[dict[str, Any]]:
        with sqlite3.connect(self.db_path) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(sql, {"site": self.site_id}).fetchall()]


async def _create_site(url: str, domain: str) -> tuple[int, str]:
    db = Database(url)
    try:
        async with db.begin() as conn:
            site = await create_site(
                conn,
                name="Örnek Klinik",
                domains=[domain],
                currency="TRY",
                time_zone="Europe/Istanbul",
                now=datetime.now(UTC),
            )
    finally:
        await db.dispose()
    return site.id, site.public_key


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    _chromium()
    tmp = tmp_path_factory.mktemp("script")
    app_port = _free_port()
    app = f"http://127.0.0.1:{app_port}"
    gateway = Gateway(app)
    api_server = _serve(gateway.handle)
    api = f"http://127.0.0.1:{api_server.server_address[1]}"
    script_src: dict[str, str] = {}

    def site_page(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        if path.startswith(("/site.html", "/spa/")):
            page = Template((PAGES / "site.html").read_text(encoding="utf-8"))
            html = page.substitute(script_src=script_src["src"]).encode()
            return 200, {"Content-Type": "text/html; charset=utf-8"}, html
        return 404, {"Content-Type": "text/plain"}, b"not here"

    site_server = _serve(site_page)
    site_port = site_server.server_address[1]
    site = f"http://127.0.0.1:{site_port}"
    db_path = tmp / "kervan.db"
    env = {
        **os.environ,
        "KERVAN_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "KERVAN_DATA_DIR": str(tmp / "data"),
        "KERVAN_ADMIN_API_KEY": "browser-test-key",
        "KERVAN_PUBLIC_ORIGIN": app,
        # The customer site may read kervan's consent state with a subject's proof.
        "KERVAN_ALLOWED_ORIGINS": site,
        "KERVAN_REDIS_URL": "",
        "KERVAN_RATELIMIT_DEFAULT_POLICY": "",
        "KERVAN_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    log = (tmp / "server.log").open("wb")
    proc = spawn_kervan(
        ["serve", "--migrate", "--port", str(app_port)],
        cwd=tmp,
        env=env,
        log=log,
        own_group=False,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{app}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp / "server.log").read_text()[-3000:])
            time.sleep(0.2)
        site_id, key = asyncio.run(
            _create_site(f"sqlite+aiosqlite:///{db_path}", f"127.0.0.1:{site_port}")
        )
        script_src["src"] = f"{api}/t/{key}.js"
        yield World(app, site, api, site_id, key, db_path, gateway)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        api_server.shutdown()
        site_server.shutdown()
        gateway.client.close()


# ------------------------------------------------------------------ Chromium over CDP


class CdpError(Exception):
    pass


class Cdp:
    """One DevTools connection to the browser: calls by id, events collected by a reader."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                message = json.loads(raw)
                with self.cond:
                    if "id" in message:
                        self.replies[message["id"]] = message
                    else:
                        self.events.append(message)
                    self.cond.notify_all()
        except ConnectionClosed:
            pass

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        with self.cond:
            if not self.cond.wait_for(lambda: msg_id in self.replies, timeout=DEADLINE):
                raise CdpError(f"no answer to {method}")
            reply = self.replies.pop(msg_id)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def event(
        self, method: str, session: str, match: Callable[[dict[str, Any]], bool], after: int = 0
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for message in self.events[after:]:
                if (
                    message.get("method") == method
                    and message.get("sessionId") == session
                    and match(message.get("params", {}))
                ):
                    return dict(message["params"])
            return None

        with self.cond:
            self.cond.wait_for(lambda: found() is not None, timeout=DEADLINE)
            hit = found()
        if hit is None:
            raise AssertionError(f"no {method} event")
        return hit


@pytest.fixture(scope="module")
def browser(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cdp]:
    profile = tmp_path_factory.mktemp("chromium")
    proc = subprocess.Popen(
        [
            _chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"

        def endpoint() -> list[str] | None:
            parts = port_file.read_text().split() if port_file.exists() else []
            return parts if len(parts) >= 2 else None  # the port, then the browser's path

        lines = _until("Chromium's DevTools endpoint", endpoint)
        with connect(f"ws://127.0.0.1:{lines[0]}{lines[1]}", max_size=None) as ws:
            yield Cdp(ws)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Tab:
    """A page in a browser context of its own (its own cookies and storage)."""

    def __init__(self, cdp: Cdp, world: World) -> None:
        self.cdp = cdp
        self.world = world
        self.context = cdp.call("Target.createBrowserContext")["browserContextId"]
        target = cdp.call("Target.createTarget", url="about:blank", browserContextId=self.context)
        self.session = cdp.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable")
        self.call("Network.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.cdp.call(method, self.session, **params)

    def close(self) -> None:
        self.cdp.call("Target.disposeBrowserContext", browserContextId=self.context)

    def open(self, url: str, referrer: str | None = None) -> None:
        """Navigate and wait for the load event and for the script to have started."""
        mark = len(self.cdp.events)
        params: dict[str, Any] = {"url": url}
        if referrer:
            # As a search engine's link would send it (the default policy drops a referrer
            # from https to this http test page).
            params.update(referrer=referrer, referrerPolicy="unsafeUrl")
        self.call("Page.navigate", **params)
        self.cdp.event("Page.loadEventFired", self.session, lambda p: True, after=mark)
        self.until("the script to start", "window.kervan && window.kervan.status && 1")

    def js(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def until(self, what: str, expression: str) -> Any:
        def probe() -> Any:
            try:
                return self.js(expression)
            except (CdpError, AssertionError):  # between two documents
                return None

        return _until(what, probe)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.js("kervan.status()")
        return status

    def click(self, selector: str) -> None:
        """A real (trusted) mouse click in the middle of the element."""
        box = self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )

    def storage(self) -> dict[str, Any]:
        return dict(
            self.js(
                "({cookie: document.cookie, local: Object.keys(localStorage),"
                " session: Object.keys(sessionStorage)})"
            )
        )

    def cookies(self) -> list[dict[str, Any]]:
        found = self.cdp.call("Storage.getCookies", browserContextId=self.context)
        return list(found["cookies"])

    def offline(self, offline: bool) -> None:
        self.call(
            "Network.emulateNetworkConditions",
            offline=offline,
            latency=0,
            downloadThroughput=-1,
            uploadThroughput=-1,
        )


@pytest.fixture
def tab(browser: Cdp, world: World) -> Iterator[Tab]:
    world.gateway.reset()
    opened = Tab(browser, world)
    try:
        yield opened
    finally:
        opened.close()
    # The ingest took every event the script sent: the script speaks its wire format.
    rejected = [
        (result, event)
        for sync in world.gateway.answered()
        for result, event in zip(sync.answer["results"], sync.body["events"], strict=True)
        if result["outcome"] not in ("accepted", "duplicate")
    ]
    assert rejected == []


def _events(syncs: list[Sync]) -> list[dict[str, Any]]:
    return [event for sync in syncs for event in sync.body["events"]]


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == kind]


def _delivered(world: World, ids: set[str]) -> None:
    """Each event arrived exactly once: with the ingest, one stored row per id; always, each id
    answered 200 in exactly one request (a retry never resends an acknowledged event)."""
    answered: dict[str, int] = {}
    for sync in world.gateway.answered():
        for event_id in sync.ids:
            answered[event_id] = answered.get(event_id, 0) + 1
    assert {i: answered.get(i, 0) for i in ids} == dict.fromkeys(ids, 1)
    stored = [row["event_id"] for row in world.stored_events() if row["event_id"] in ids]
    assert sorted(stored) == sorted(ids)


# ------------------------------------------------------------------ the tests


def test_nothing_is_stored_or_sent_before_consent_then_the_hook_grants_it(
    tab: Tab, world: World
) -> None:
    tab.open(world.page())
    tab.until("the page view held", "kervan.status().held >= 1")
    tab.click("#tel")
    tab.click("#cta")
    tab.click("#wa-api")
    status = tab.status()
    assert status == {"site": world.site_key, "consent": False, "held": 4, "pending": 0, "sent": 0}
    assert tab.storage() == {"cookie": "", "local": [], "session": []}
    assert tab.cookies() == []
    # Without consent a WhatsApp link gets no reference code (an identifier).
    assert tab.js("document.querySelector('#wa-api').href") == (
        "https://api.whatsapp.com/send?phone=905551112233"
    )
    # The only request to kervan so far: the script itself.
    assert set(world.gateway.requests) <= {("GET", f"/t/{world.site_key}.js")}

    granted_at = time.monotonic()
    tab.js('kervan.push(["consent", {analytics: true, ads: false}])')
    syncs = world.gateway.wait("the held events", lambda s: len(_events(s)) >= 4)
    assert all(sync.at >= granted_at for sync in syncs)
    first = syncs[0]
    assert first.content_type.startswith("text/plain")
    assert first.origin == world.site
    body = first.body
    assert body["site"] == world.site_key
    assert re.fullmatch(r"v_[A-Za-z0-9_-]{22}", body["visitor"])
    assert body["consent"] == {"analytics": True, "ads": False, "subject": None}
    assert isinstance(body["sent_at"], int)
    context = body["context"]
    assert context["url"] == world.page()
    assert context["user_agent_hint"] == "desktop"
    assert context["language"] and re.fullmatch(r"\d+x\d+", context["screen"])
    assert body["landing"] == {"url": world.page()}
    events = _events(syncs)
    assert [e["type"] for e in events] == ["page_view", "intent", "click", "intent"]
    view, call, cta, api_link = events
    assert view["title"] == "Örnek Klinik" and view["url"] == world.page()
    assert call["intent"] == {"kind": "phone", "target": "tel:+905551112233"}
    assert cta["name"] == "cta-hero"
    assert api_link["intent"] == {
        "kind": "whatsapp",
        "target": "https://api.whatsapp.com/send?phone=905551112233",
    }
    for event in events:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", event["id"])
        assert isinstance(event["ts"], int) and event["ts"] <= body["sent_at"]

    # Only now: the visitor id and the session's landing, nothing else, and still no cookie.
    stored = tab.storage()
    key = world.site_key
    assert stored["cookie"] == ""
    assert stored["session"] == [f"kervan:{key}:l"]
    assert tab.js(f"localStorage.getItem('kervan:{key}:v')") == json.dumps(body["visitor"])
    tab.until("the queue emptied", f"localStorage.getItem('kervan:{key}:q') === null")
    assert tab.cookies() == []
    _delivered(world, {e["id"] for e in events})


def test_google_consent_mode_grants_and_a_regional_default_denies(tab: Tab, world: World) -> None:
    tab.open(world.page("consent=gcm"))
    tab.until("the page view held", "kervan.status().held >= 1")
    # Granted by default, but denied by a default for a region the visitor may be in.
    assert tab.status()["consent"] is False
    assert tab.storage() == {"cookie": "", "local": [], "session": []}
    tab.js(
        "gtag('consent', 'update', {analytics_storage: 'granted', ad_storage: 'granted',"
        " ad_user_data: 'granted'})"
    )
    syncs = world.gateway.wait("the page view", lambda s: len(_events(s)) >= 1)
    assert syncs[0].body["consent"] == {"analytics": True, "ads": True, "subject": None}
    assert _of(_events(syncs), "page_view")[0]["url"] == world.page("consent=gcm")
    # Ads withdrawn through Consent Mode: analytics goes on, without ads consent.
    tab.js("gtag('consent', 'update', {ad_storage: 'denied'})")
    tab.click("#cta")
    syncs = world.gateway.wait("the click", lambda s: len(_of(_events(s), "click")) >= 1)
    assert syncs[-1].body["consent"]["ads"] is False
    # The site's own hook comes first: it denies although Consent Mode grants.
    tab.js('kervan.push(["consent", {analytics: false}])')
    assert tab.status()["consent"] is False
    assert tab.storage() == {"cookie": "", "local": [], "session": []}


def test_consent_read_from_kervans_consent_api(tab: Tab, world: World) -> None:
    minted = httpx.post(f"{world.app}/consent", timeout=10).json()
    subject, proof = minted["subject"], minted["subject_proof"]
    changed = httpx.put(
        f"{world.app}/consent/{subject}",
        json={"choices": {"analytics": "granted", "ads": "denied"}},
        headers={"X-Consent-Proof": proof},
        timeout=10,
    )
    assert changed.status_code == 200, changed.text
    tab.open(world.page())
    tab.until("the page view held", "kervan.status().held >= 1")
    tab.js(f"kervan.push(['consent_subject', {json.dumps({'subject': subject, 'proof': proof})}])")
    syncs = world.gateway.wait("the page view", lambda s: len(_events(s)) >= 1)
    assert syncs[0].body["consent"] == {"analytics": True, "ads": False, "subject": subject}
    assert ("GET", f"/consent/{subject}") in world.gateway.requests

    # A wrong proof grants nothing.
    tab.open(world.page("page=2"))
    tab.until("the page view held", "kervan.status().held >= 1")
    before = len(world.gateway.requests)
    tab.js(f"kervan.push(['consent_subject', {json.dumps({'subject': subject, 'proof': 'x'})}])")
    _until(
        "the consent read",
        lambda: ("GET", f"/consent/{subject}") in world.gateway.requests[before:],
    )
    assert tab.status()["consent"] is False


def test_page_view_with_click_ids_and_utm_keeps_the_landing(tab: Tab, world: World) -> None:
    landing = world.page(
        "consent=hook&gclid=Cj0KCQ-test_gclid&utm_source=google&utm_medium=cpc"
        "&utm_campaign=implant-2026&utm_term=dis%20implant&utm_content=ad1"
    )
    tab.open(landing, referrer="https://www.google.com/")
    first = world.gateway.wait("the landing page view", lambda s: len(_events(s)) >= 1)[0]
    assert first.body["landing"] == {"url": landing, "referrer": "https://www.google.com/"}
    view = first.body["events"][0]
    assert view["type"] == "page_view" and view["url"] == landing
    assert view["referrer"] == "https://www.google.com/"
    assert first.body["context"]["referrer"] == "https://www.google.com/"

    # The next page of the session, without click ids: the landing stays the session's.
    tab.click("#next")
    second = world.gateway.wait(
        "the second page view", lambda s: len(_of(_events(s), "page_view")) >= 2
    )[-1]
    assert second.body["landing"] == first.body["landing"]
    assert second.body["visitor"] == first.body["visitor"]
    view = _of(second.body["events"], "page_view")[-1]
    assert view["url"] == world.page("page=2&consent=hook")
    assert view["referrer"] == landing

    sessions = world.stored(
        "SELECT gclid, source, medium, campaign, term, content FROM track_sessions"
        " WHERE site_id = :site"
    )
    assert {
        "gclid": "Cj0KCQ-test_gclid",
        "source": "google",
        "medium": "cpc",
        "campaign": "implant-2026",
        "term": "dis implant",
        "content": "ad1",
    } in sessions


def test_spa_navigations_are_page_views(tab: Tab, world: World) -> None:
    start = world.page("consent=hook")
    tab.open(start)
    world.gateway.wait("the first page view", lambda s: len(_events(s)) >= 1)
    tab.click("#spa")
    tab.click("#spa-replace")  # the same page with another query: no page view
    tab.click("#spa-hash")  # the same page: no page view
    tab.js("history.go(-2)")  # popstate back to the start
    views = _of(
        _events(world.gateway.wait("SPA views", lambda s: len(_of(_events(s), "page_view")) >= 3)),
        "page_view",
    )
    pricing = f"{world.site}/spa/pricing"
    assert [v["url"] for v in views] == [start, pricing, start]
    assert views[1]["title"] == "Fiyatlar" and views[1]["referrer"] == start
    assert views[2]["referrer"].startswith(pricing)
    assert len(_of(_events(world.gateway.syncs), "page_view")) == 3


def test_an_event_just_before_leaving_the_page_is_stored_once(tab: Tab, world: World) -> None:
    tab.open(world.page("consent=hook"))
    world.gateway.wait("the page view", lambda s: len(_events(s)) >= 1)
    # Clicked, and the page left in the same task: the batch timer has not run yet, so the
    # click leaves with the page (keepalive fetch or beacon) and stays queued until answered;
    # the next page may send it again, and the ingest keeps it once.
    tab.js("document.querySelector('#cta').click(); document.querySelector('#next').click()")
    syncs = world.gateway.wait(
        "the click and the next page view",
        lambda s: bool(_of(_events(s), "click")) and len(_of(_events(s), "page_view")) >= 2,
    )
    click = _of(_events(syncs), "click")[0]
    assert click["url"] == world.page("consent=hook")
    tab.until("the queue emptied", f"localStorage.getItem('kervan:{world.site_key}:q') === null")
    stored = [row for row in world.stored_events() if row["event_id"] == click["id"]]
    assert len(stored) == 1 and stored[0]["name"] == "cta-hero"


def test_phone_and_whatsapp_clicks_become_intents(tab: Tab, world: World) -> None:
    tab.open(world.page("consent=hook"))
    world.gateway.wait("the page view", lambda s: len(_events(s)) >= 1)
    tab.click("#tel")
    tab.click("#call-btn")
    tab.click("#wa-btn-inner")  # inside a data-kervan-intent element
    tab.click("#wa-api")
    tab.click("#wa-group")
    tab.click("#cta-inner")
    tab.click("#plain")  # nothing to report
    intents = _of(
        _events(world.gateway.wait("5 intents", lambda s: len(_of(_events(s), "intent")) >= 5)),
        "intent",
    )
    tel, center, button, api_link, group = (event["intent"] for event in intents)
    assert tel == {"kind": "phone", "target": "tel:+905551112233"}
    assert center == {"kind": "phone", "target": "tel:+902120000000"}
    assert button["kind"] == "whatsapp" and button["target"] == "https://wa.me/905550000000"
    assert REF.match(button["ref"])
    # The site's own handler can put the code in the message it opens.
    assert tab.js("document.querySelector('#wa-btn').dataset.kervanRef") == button["ref"]
    assert api_link["target"] == "https://api.whatsapp.com/send?phone=905551112233"
    assert tab.js("document.querySelector('#wa-api').href") == (
        f"https://api.whatsapp.com/send?phone=905551112233&text=(ref%3A%20{api_link['ref']})"
    )
    # A group invite has no pre-filled text to carry a code.
    assert group == {"kind": "whatsapp", "target": "https://chat.whatsapp.com/AbCdEf123456"}
    assert tab.js("document.querySelector('#wa-group').href").endswith("/AbCdEf123456")
    syncs = world.gateway.wait("the click", lambda s: bool(_of(_events(s), "click")))
    assert [c["name"] for c in _of(_events(syncs), "click")] == ["cta-hero"]

    # A wa.me link that leaves the page: the browser navigates to the link with the code.
    tab.call("Fetch.enable", patterns=[{"urlPattern": "https://wa.me/*"}])
    mark = len(tab.cdp.events)
    tab.click("#wa")
    paused = tab.cdp.event("Fetch.requestPaused", tab.session, lambda p: True, after=mark)
    text = parse_qs(urlsplit(paused["request"]["url"]).query)["text"][0]
    code = re.fullmatch(r"Merhaba, randevu almak istiyorum \(ref: ([A-Z2-9]{6})\)", text)
    assert code is not None, text
    tab.call(
        "Fetch.fulfillRequest",
        requestId=paused["requestId"],
        responseCode=200,
        responseHeaders=[{"name": "Content-Type", "value": "text/html"}],
        body="",
    )
    syncs = world.gateway.wait("the wa.me intent", lambda s: len(_of(_events(s), "intent")) >= 6)
    wa = _of(_events(syncs), "intent")[5]["intent"]
    assert wa == {"kind": "whatsapp", "target": "https://wa.me/905551112233", "ref": code[1]}
    intent_ids = {e["id"] for e in _of(_events(syncs), "intent")}
    _delivered(world, intent_ids)
    refs = world.stored("SELECT ref_code FROM track_intents WHERE site_id = :site")
    assert {"ref_code": code[1]} in refs


def test_failed_and_offline_sends_are_retried_from_the_queue(tab: Tab, world: World) -> None:
    key = world.site_key
    tab.open(world.page("consent=hook"))
    world.gateway.wait("the page view", lambda s: len(_events(s)) >= 1)
    world.gateway.failing = 503
    tab.click("#cta")
    # Refused, then resent after Retry-After with the same event id.
    failed = world.gateway.wait(
        "two refused sends", lambda s: len([x for x in s if x.status == 503]) >= 2
    )
    refused = [sync for sync in failed if sync.status == 503]
    assert refused[0].ids == refused[1].ids
    queued = json.loads(tab.js(f"localStorage.getItem('kervan:{key}:q')"))
    assert [event["id"] for event in queued] == refused[0].ids

    # Another page of the site while the ingest still fails: the queue comes along.
    tab.click("#next")
    tab.until("the second page", "location.search.includes('page=2') && !!window.kervan.status")
    world.gateway.wait(
        "the queue resent from the next page",
        lambda s: any(
            x.status == 503
            and refused[0].ids[0] in x.ids
            and any(e["type"] == "page_view" and "page=2" in e["url"] for e in x.body["events"])
            for x in s
        ),
    )

    # Offline: nothing reaches the gateway; events wait in the queue.
    tab.offline(True)
    tab.until("the offline state", "navigator.onLine === false")
    tab.click("#cta")
    tab.click("#tel")
    tab.until(
        "4 events queued",
        f"JSON.parse(localStorage.getItem('kervan:{key}:q') || '[]').length === 4",
    )
    expected = {
        event["id"] for event in json.loads(tab.js(f"localStorage.getItem('kervan:{key}:q')"))
    }
    world.gateway.failing = None
    tab.offline(False)
    tab.until("the queue delivered", f"localStorage.getItem('kervan:{key}:q') === null")
    _delivered(world, expected | {_events(world.gateway.answered())[0]["id"]})


def test_withdrawal_stops_sending_and_deletes_what_was_stored(tab: Tab, world: World) -> None:
    key = world.site_key
    tab.open(world.page("consent=hook"))
    first = world.gateway.wait("the page view", lambda s: len(_events(s)) >= 1)[0]
    assert tab.storage()["session"] == [f"kervan:{key}:l"]
    tab.js('kervan.push(["consent", {analytics: false}])')
    assert tab.storage() == {"cookie": "", "local": [], "session": []}
    tab.click("#tel")
    tab.click("#cta")
    status = tab.status()
    assert status["consent"] is False and status["pending"] == 0 and status["held"] == 2
    assert tab.storage() == {"cookie": "", "local": [], "session": []}
    sent = len(world.gateway.syncs)

    # Consent again later (the next page): a new visitor id, nothing of the old one sent.
    tab.open(world.page("consent=hook&page=3"))
    later = world.gateway.wait("the next page view", lambda s: len(s) > sent)[sent]
    assert later.body["visitor"] != first.body["visitor"]
    assert [e["type"] for e in later.body["events"]] == ["page_view"]
    assert tab.cookies() == []
