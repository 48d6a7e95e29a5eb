"""Real ``kervan serve`` processes for the multi-process support tests, a redis-server that can
be stopped and started again on its port, and admin sessions made the way the servers read them.

A server runs in a process group of its own (as in ``tests/whatsapp/test_webhook_kill.py``), so
SIGKILL takes the granian worker down with its master, as a crash of the container would.
Admin sessions are written by the test with the same ``SessionStore`` (kind and TTLs) the
servers' ``AdminAuth`` reads, into the same Redis namespace, for an account row in the same
database: no test-only path in the service.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis as sync_redis

from core.clock import SYSTEM_CLOCK
from service.admins.accounts import add_admin
from service.admins.facility import KIND
from service.admins.sessions import SessionStore
from service.admins.settings import AdminSettings
from service.backends import Backends, redis_backends
from service.db import Database
from service.db.types import utcnow
from tests.cli_process import spawn_kervan
from tests.services import free_port, require_tool
from tests.support.wsclient import WAIT, Client, Desk

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group, SIGKILL after 30 s; nothing if it has ended."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


class Server:
    """``kervan serve --migrate`` with one granian worker, in a process group of its own."""

    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = folder / f"server-{name}.log"
        self._fh = self.log.open("a")
        #: Killed on purpose by the test (``kill``), so not running is expected.
        self.killed = False
        self.proc = spawn_kervan(
            ["serve", "--migrate"],
            cwd=folder,
            env={**env, "KERVAN_PORT": str(self.port)},
            log=self._fh,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        #: Customer and admin connections to this server (``Desk`` needs no app for those).
        self.desk = Desk(f"ws://127.0.0.1:{self.port}", None)

    def tail(self, chars: int = 3000) -> str:
        self._fh.flush()
        return f"--- server {self.name} ---\n" + self.log.read_text(errors="replace")[-chars:]

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    async def health(self) -> int:
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            return (await client.get("/health")).status_code

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until ``/health`` answers (blocking: servers start while no client runs)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.alive, self.tail()
                try:
                    if client.get("/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise AssertionError("the server did not start:\n" + self.tail())

    def kill(self) -> None:
        self.killed = True
        os.killpg(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        stop_group(self.proc)
        self._fh.close()


class WorkerProcess:
    """``kervan worker`` (the queue worker and the support history writer), as a scaled
    deployment runs it beside the API processes."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.log = folder / "worker.log"
        self._fh = self.log.open("a")
        self.proc = spawn_kervan(["worker"], cwd=folder, env=env, log=self._fh)

    def tail(self, chars: int = 3000) -> str:
        self._fh.flush()
        return "--- worker ---\n" + self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        stop_group(self.proc)
        self._fh.close()


def server_env(
    *, database_url: str, redis_url: str, namespace: str, data_dir: Path, **settings: str
) -> dict[str, str]:
    """The environment of a server: the test's own ``KERVAN_*`` values only, plus ``settings``
    (field names, upper-cased and prefixed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERVAN_")}
    env.update(
        KERVAN_HOST="127.0.0.1",
        KERVAN_WORKERS="1",
        KERVAN_DATABASE_URL=database_url,
        KERVAN_REDIS_URL=redis_url,
        KERVAN_REDIS_NAMESPACE=namespace,
        KERVAN_ADMIN_API_KEY="test-admin-key",
        KERVAN_DATA_DIR=str(data_dir),
        # Tests connect many clients from one address.
        KERVAN_RATELIMIT_DEFAULT_POLICY="",
        # A loaded test machine must not shed what the tests send.
        KERVAN_DEGRADE_MODE="off",
        KERVAN_LOG_LEVEL="INFO",
        KERVAN_LOG_FORMAT="json",
        PYTHONPATH=str(ROOT),
    )
    env.update({f"KERVAN_{key.upper()}": value for key, value in settings.items()})
    return env


class Pair:
    """Servers A and B on one environment (started side by side) and one ``kervan worker``
    (it writes the chat history); a killed server is replaced by ``revive`` (a new process on
    a new port, the same environment)."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.a = Server("a", env, folder)
        self.b = Server("b", env, folder)
        self._retired: list[Server] = []
        self.worker: WorkerProcess | None = None
        try:
            for server in (self.a, self.b):
                server.wait_ready()
            # After the servers' migrations.
            self.worker = WorkerProcess(env, folder)
        except BaseException:
            self.stop()
            raise

    def revive(self) -> None:
        for which in ("a", "b"):
            server: Server = getattr(self, which)
            if not server.alive:
                assert server.killed, server.tail()
                self._retired.append(server)
                fresh = Server(f"{which}{len(self._retired)}", self.env, self.folder)
                fresh.wait_ready()
                setattr(self, which, fresh)

    def stop(self) -> None:
        for server in (self.a, self.b, *self._retired):
            server.stop()
        if self.worker is not None:
            self.worker.stop()


@contextmanager
def running_pair(env: dict[str, str], folder: Path) -> Iterator[Pair]:
    """A started pair, every server of it stopped on exit (a killed one is only reaped)."""
    pair: Pair | None = None
    try:
        pair = Pair(env, folder)
        yield pair
    finally:
        if pair is not None:
            pair.stop()


class RedisProcess:
    """A redis-server on a fixed port that keeps nothing: stopped and started again, it comes
    back empty on the same address (a restart that lost its data)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.binary = require_tool("redis-server", "a Redis the test stops and starts")
        self.folder = folder
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def _answers(self) -> bool:
        client = sync_redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except sync_redis.RedisError:
            return False
        finally:
            client.close()

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = self.folder / f"redis-{self.port}.log"
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{tail}")

    def stop(self) -> None:
        """Stopped at once (SIGKILL): every client sees its connections refused."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@contextmanager
def redis_process(folder: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def make_admin_token(database_url: str, redis_url: str, namespace: str, name: str) -> str:
    """An admin account ``name`` in the servers' database and a session for it in their Redis
    namespace, written exactly as ``AdminAuth`` (default admin settings) reads it."""
    db = Database(database_url)
    try:
        admin = await add_admin(
            db, name=name, telegram_chat_id="1", language="tr", now=utcnow(), actor="test"
        )
    finally:
        await db.dispose()
    return await session_token(redis_url, namespace, admin.id, admin.name)


async def session_token(redis_url: str, namespace: str, admin_id: int, name: str) -> str:
    """A fresh session for an existing account (also after Redis lost the earlier ones)."""
    settings = AdminSettings()
    backends = redis_backends(redis_url, namespace)
    try:
        store = SessionStore(
            backends,
            SYSTEM_CLOCK,
            kind=KIND,
            idle_ttl=settings.admin_session_ttl_seconds,
            max_age=settings.admin_session_max_age_seconds,
            refresh_interval=settings.admin_session_refresh_seconds,
        )
        made = await store.create(admin_id, name, ip="127.0.0.1", user_agent="test")
    finally:
        await backends.close()
    return made.token


@asynccontextmanager
async def state_view(redis_url: str, namespace: str) -> AsyncIterator[Backends]:
    """The servers' state backend as the test reads it (the queue's state, for assertions)."""
    backends = redis_backends(redis_url, namespace)
    try:
        yield backends
    finally:
        await backends.close()


def drop_namespace(url: str, namespace: str) -> None:
    # Test-only cleanup (as tests/conftest.py does); product code never scans the keyspace.
    client = sync_redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def forget(client: Client, kind: str) -> None:
    """Drop the kept frames of ``kind``: the next ``expect`` waits for a new one."""
    client.frames = [f for f in client.frames if f["type"] != kind]


def abort(client: Client) -> None:
    """Cut the client's TCP connection without a closing handshake (a lost network)."""
    socket: Any = client.socket
    socket.transport.abort()


async def expect_any(
    client: Client, kinds: tuple[str, ...], *, timeout: float = WAIT
) -> dict[str, Any]:
    """The first frame of any of ``kinds``, kept or still to come (the others are kept)."""
    for index, data in enumerate(client.frames):
        if data["type"] in kinds:
            return client.frames.pop(index)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"none of {kinds} within {timeout}s; kept: {client.frames}")
        try:
            raw = await asyncio.wait_for(client.socket.recv(), left)
        except TimeoutError:
            continue
        found: dict[str, Any] = orjson.loads(raw)
        if found["type"] == "ping":
            await client.send({"type": "pong"})
        elif found["type"] in kinds:
            return found
        else:
            client.frames.append(found)


def unavailable(found: dict[str, Any]) -> bool:
    """The desk's answer while its state backend fails (the client is to try again)."""
    kind, code = found["type"], found.get("code") or found.get("reason")
    return (kind, code) in (("error", "support_unavailable"), ("queue:refused", "unavailable"))


async def patiently(
    client: Client, message: dict[str, Any], answers: tuple[str, ...], what: str
) -> dict[str, Any]:
    """Send ``message`` again (the same frame: a chat keeps its client id) while the desk
    answers that support is unavailable, until one of ``answers`` comes."""

    async def attempt() -> dict[str, Any] | None:
        await client.send(message)
        found = await expect_any(client, (*answers, "error", "queue:refused"))
        if unavailable(found):
            return None
        assert found["type"] in answers, found
        return found

    found: dict[str, Any] = await until(attempt, what, every=0.1)
    return found


@asynccontextmanager
async def patient_admin(server: Server, token: str) -> AsyncIterator[Client]:
    """An admin connection that waits out a state backend just back from an outage."""
    async with server.desk.connect() as client:
        hello = {"type": "hello", "role": "admin", "token": token}
        client.welcome = await patiently(client, hello, ("welcome",), "the admin's welcome")
        # Taking its place at the desk follows the welcome, and may have failed as well.
        if unavailable(await expect_any(client, ("presence", "error"))):
            online = {"type": "presence:set", "status": "online"}
            await patiently(client, online, ("presence",), "the admin online")
        yield client


async def until(check: Any, what: str, *, timeout: float = 15.0, every: float = 0.05) -> Any:
    """Poll the coroutine function ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {found!r})")
        await asyncio.sleep(every)
