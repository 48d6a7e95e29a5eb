"""A support-desk client for tests over a real WebSocket, and an app served on a real port.

``Desk.serve`` runs the full app (lifespan, features) under granian embedded in the test's own
event loop, so a test can reach the app's runtime and talk to it through real sockets.
``Client.expect`` waits for the next frame of a type, keeping the others for later ``expect``
calls (pings are answered and dropped), so a test never depends on how frames interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import websockets
from granian.constants import Interfaces
from granian.server.embed import Server

from service.app import create_app
from service.db import Database
from service.db.migrate import migrate
from service.runtime import Runtime
from service.settings import Settings
from tests.services import free_port

WAIT = 10.0
_client_ids = itertools.count(1)


class Client:
    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.welcome: dict[str, Any] = {}

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.socket.send(
            message if isinstance(message, str) else orjson.dumps(message).decode()
        )

    async def _next(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.socket.recv(), timeout)
        data: dict[str, Any] = orjson.loads(raw)
        if data["type"] == "ping":
            await self.send({"type": "pong"})
        return data

    async def expect(self, kind: str, *, timeout: float = WAIT, **match: Any) -> dict[str, Any]:
        """The first frame of ``kind`` (whose fields equal ``match``), kept or still to come."""
        for index, data in enumerate(self.frames):
            if data["type"] == kind and all(data.get(k) == v for k, v in match.items()):
                return self.frames.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {kind} {match} within {timeout}s; kept: {self.frames}")
            try:
                data = await self._next(left)
            except TimeoutError:
                continue
            if data["type"] == kind and all(data.get(k) == v for k, v in match.items()):
                return data
            if data["type"] != "ping":
                self.frames.append(data)

    async def absent(self, kind: str, *, within: float = 0.3) -> None:
        """No frame of ``kind`` arrives within ``within`` seconds (others are kept)."""
        with contextlib.suppress(AssertionError):
            found = await self.expect(kind, timeout=within)
            raise AssertionError(f"unexpected {kind}: {found}")

    async def chat(self, room: str, text: str, client_id: str | None = None) -> dict[str, Any]:
        cid = client_id or f"m{next(_client_ids)}"
        await self.send({"type": "chat:send", "room": room, "client_id": cid, "text": text})
        return await self.expect("chat:ack", client_id=cid)

    async def close(self) -> None:
        await self.socket.close()


class Desk:
    """One served app: open customer and admin connections to it."""

    def __init__(self, url: str, app: Any) -> None:
        self.url = url
        self.app = app

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    @asynccontextmanager
    async def connect(self, **headers: str) -> AsyncIterator[Client]:
        async with websockets.connect(
            self.url + "/ws/support", additional_headers=headers or None, open_timeout=WAIT
        ) as socket:
            yield Client(socket)

    @asynccontextmanager
    async def customer(
        self,
        name: str = "Ayşe",
        *,
        language: str = "tr",
        resume: str | None = None,
        rooms: dict[str, Any] | None = None,
    ) -> AsyncIterator[Client]:
        async with self.connect() as client:
            hello: dict[str, Any] = {
                "type": "hello",
                "role": "customer",
                "name": name,
                "language": language,
            }
            if resume:
                hello["resume"] = resume
            if rooms:
                hello["rooms"] = rooms
            await client.send(hello)
            client.welcome = await client.expect("welcome")
            yield client

    @asynccontextmanager
    async def admin(self, token: str, rooms: dict[str, Any] | None = None) -> AsyncIterator[Client]:
        async with self.connect() as client:
            hello: dict[str, Any] = {"type": "hello", "role": "admin", "token": token}
            if rooms:
                hello["rooms"] = rooms
            await client.send(hello)
            client.welcome = await client.expect("welcome")
            yield client

    @staticmethod
    @asynccontextmanager
    async def serve(settings: Settings) -> AsyncIterator[Desk]:
        db = Database(settings.database_url)
        await migrate(db)
        await db.dispose()
        app = create_app(settings)
        port = free_port()
        server = Server(
            app, address="127.0.0.1", port=port, interface=Interfaces.ASGI, log_enabled=False
        )
        task = asyncio.create_task(server.serve())
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while getattr(app.state, "runtime", None) is None or not _listening(port):
                if task.done():
                    task.result()
                    raise AssertionError("granian stopped before serving")
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError("the app did not start")
                await asyncio.sleep(0.05)
            yield Desk(f"ws://127.0.0.1:{port}", app)
        finally:
            server.stop()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def admin_token(runtime: Runtime, name: str) -> str:
    """An admin account ``name`` (made when missing) and a fresh session token for it."""
    from service.admins.accounts import add_admin, find_admin
    from service.admins.facility import AdminAuth
    from service.db.types import utcnow

    admin = await find_admin(runtime.db, name)
    if admin is None:
        admin = await add_admin(
            runtime.db,
            name=name,
            telegram_chat_id="1",
            language="tr",
            now=utcnow(),
            actor="test",
        )
    made = await runtime.facility(AdminAuth).sessions.create(
        admin.id, admin.name, ip="127.0.0.1", user_agent="test"
    )
    return made.token
