"""One ``/ws/support`` connection from ``hello`` to close: frames in, the desk's calls, frames out.

Every bad frame is answered with an ``error`` frame (the same ``code``/``message``/``details``
as the HTTP error body) and the connection stays open; a connection is closed only with a code
and a reason: no ``hello`` in time (4001), a failed admin login (4003), a missed heartbeat
(4000), an outbox overflow (1013), the server draining (1012, after a ``reconnect`` frame:
``service/support/drain.py``), or the server going away (1001).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from core.errors import BackendUnavailable, StateBackendError
from core.i18n import resolve_locale
from core.support.texts import text
from service.edge import TRANSPORT_KEY
from service.logging import get_logger
from service.support.connection import CLOSE_HEARTBEAT, Connection
from service.support.desk import SupportDesk
from service.support.metrics import SUPPORT
from service.support.people import Person, admin_person_id
from service.support.protocol import (
    ADMIN_ONLY,
    CUSTOMER_ONLY,
    CallbackRequest,
    ChatEnd,
    ChatSend,
    Hello,
    HistoryFetch,
    MessageLeave,
    PresenceSet,
    ProtocolError,
    Typing,
    error_frame,
    frame,
    parse_client_frame,
)
from service.support.protocol_rtc import RTC_CLIENT_MESSAGES

if TYPE_CHECKING:
    from service.rtc.relay import SignalRelay

log = get_logger("kervan.support.session")
RTC_KINDS = frozenset(m.model_fields["type"].annotation.__args__[0] for m in RTC_CLIENT_MESSAGES)  # type: ignore[union-attr]

CLOSE_NO_HELLO = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_GOING_AWAY = 1001


@dataclass(frozen=True)
class AdminIdentity:
    id: str
    name: str
    language: str


AdminAuthenticator = Callable[[WebSocket, str | None], Awaitable[AdminIdentity | None]]


class SupportSession:
    def __init__(
        self,
        desk: SupportDesk,
        websocket: WebSocket,
        authenticate_admin: AdminAuthenticator,
        relay: SignalRelay | None = None,
    ) -> None:
        self.desk = desk
        self.relay = relay
        self.ws = websocket
        self.authenticate_admin = authenticate_admin
        self.settings = desk.settings
        self.conn: Connection | None = None
        self.last_heard = time.monotonic()
        self._close_request: tuple[int, str] | None = None
        self._main: asyncio.Task[Any] | None = None
        #: The drain's ``reconnect`` frame for a connection told before its ``welcome``.
        self._away: bytes | None = None
        #: The server's receive and send (the edge's), used once accepted: Starlette's
        #: ``WebSocket`` adds per-frame state checks and an exception wrapper to each, a
        #: measurable share of a relay's time. Its state is kept here instead.
        self._transport: tuple[Receive, Send] | None = websocket.scope.get(TRANSPORT_KEY)

    async def _send_now(self, data: bytes) -> None:
        await self.send_text(data.decode())

    async def send_text(self, text: str) -> None:
        try:
            await self._send_frame(text)
        except OSError:
            # As Starlette's WebSocket.send (whose own path never raises it): the socket is gone.
            self.ws.application_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(code=1006) from None

    def _send_frame(self, text: str) -> Awaitable[None]:
        """One frame: once accepted, the server's own send (a future, no coroutine around it:
        the connection's outbox awaits it, and a failure there is the connection's to see);
        before ``accept`` and after a close, Starlette's checked path."""
        if self._transport is None or self.ws.application_state != WebSocketState.CONNECTED:
            return self.ws.send_text(text)
        sent: Awaitable[None] = self._transport[1]({"type": "websocket.send", "text": text})
        return sent

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            if self.ws.application_state != WebSocketState.DISCONNECTED:
                await self.ws.close(code, reason)

    async def request_close(self, code: int, reason: str) -> None:
        """Close from another task (heartbeat, a full outbox): the reading task is cancelled
        and closes the socket itself, since a close sent while a receive waits is not
        delivered by every server."""
        self._request_close_now(code, reason)

    def go_away(self, reconnect: bytes, code: int, reason: str) -> None:
        """The drain's request: send ``reconnect`` after what is queued, then close."""
        if self.conn is None:
            # Still in its hello: told as soon as it has one (or cut when the process stops).
            self._away = reconnect
            self._close_request = self._close_request or (code, reason)
            return
        self.conn.send(reconnect)
        self._request_close_now(code, reason)

    def _request_close_now(self, code: int, reason: str) -> None:
        if self._close_request is None:
            self._close_request = (code, reason)
            if self._main is not None:
                self._main.cancel()

    async def _receive(self) -> str | bytes | None:
        if self._transport is None or self.ws.client_state != WebSocketState.CONNECTED:
            message = await self.ws.receive()
        else:
            message = await self._transport[0]()
        if message["type"] == "websocket.disconnect":
            self.ws.client_state = WebSocketState.DISCONNECTED
            return None
        self.last_heard = time.monotonic()
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        return data

    def _too_large(self, data: str | bytes) -> bool:
        size = len(data) if isinstance(data, bytes) else len(data.encode())
        return size > self.settings.support_max_frame_bytes

    async def run(self) -> None:
        await self.ws.accept()
        try:
            person, resume_token, hello = await self._hello()
        except WebSocketDisconnect:
            return
        if person is None:
            return
        if self._away is not None and self._close_request is not None:
            # Drained during its hello: it resumes elsewhere, with nothing started here.
            await self._send_now(self._away)
            await self._close(*self._close_request)
            return
        conn = Connection(
            person=person,
            send_text=self._send_frame,
            close=self.request_close,
            outbox_size=self.settings.support_send_queue,
        )
        self.conn = conn
        conn.start()
        conn.send(
            frame(
                "welcome",
                person=person.id,
                role=person.role,
                name=person.name,
                language=person.language,
                resume=resume_token,
                heartbeat=self.settings.support_heartbeat_seconds,
                queue_enabled=self.settings.support_queue_enabled,
            )
        )
        heartbeat = asyncio.create_task(self._heartbeat(conn), name=f"support-beat-{conn.id}")
        attached = False
        try:
            try:
                for room, position in hello.rooms.items():
                    await self.desk.resume_room(conn, room, position.epoch, position.offset)
                if self.relay is not None:
                    for call, place in hello.calls.items():
                        await self.relay.resume(conn, call, place)
                await self.desk.attach(conn)
                attached = True
            except StateBackendError:
                attached = True  # detach tolerates an unknown state
                self.desk.local[person.id].add(conn)
                conn.send(
                    error_frame(
                        "support_unavailable", text("unavailable", resolve_locale(person.language))
                    )
                )
            # A close asked for while attaching (no task to cancel yet) is not missed.
            if self._close_request is None:
                await self._read_frames(conn)
            if self._close_request is not None:
                # What was queued (the drain's reconnect frame last) goes out before the close.
                await conn.flush(timeout=1.0)
                await self._close(*self._close_request)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            if self.relay is not None:
                self.relay.detach(conn)
            if attached:
                await self.desk.detach(conn)
            await conn.stop()

    async def _hello(self) -> tuple[Person | None, str | None, Hello]:
        try:
            data = await asyncio.wait_for(
                self._receive(), timeout=self.settings.support_hello_timeout_seconds
            )
        except TimeoutError:
            await self._send_now(error_frame("hello_timeout", "send `hello` first"))
            await self._close(CLOSE_NO_HELLO, "no hello")
            return None, None, Hello(type="hello", role="customer")
        if data is None:
            raise WebSocketDisconnect(1000)
        while True:
            # The visitor is told in the language its hello asked for, even with no state.
            language: str | None = None
            try:
                if self._too_large(data):
                    raise ProtocolError("frame_too_large", "the frame is too large")
                message = parse_client_frame(data)
                if not isinstance(message, Hello):
                    raise ProtocolError("hello_required", "the first frame must be `hello`")
                language = message.language or self.ws.headers.get("accept-language")
                return await self._identify(message)
            except ProtocolError as exc:
                SUPPORT.frames_refused.labels(exc.code).inc()
                await self._send_now(error_frame(exc.code, exc.message, exc.details))
                if exc.code == "forbidden":
                    await self._close(CLOSE_FORBIDDEN, "admin login failed")
                    return None, None, Hello(type="hello", role="customer")
            except StateBackendError:
                await self._send_now(
                    error_frame(
                        "support_unavailable", text("unavailable", resolve_locale(language))
                    )
                )
            try:
                data = await asyncio.wait_for(
                    self._receive(), timeout=self.settings.support_hello_timeout_seconds
                )
            except TimeoutError:
                await self._close(CLOSE_NO_HELLO, "no hello")
                return None, None, Hello(type="hello", role="customer")
            if data is None:
                raise WebSocketDisconnect(1000)

    async def _identify(self, hello: Hello) -> tuple[Person, str | None, Hello]:
        people = self.desk.people
        if hello.role == "admin":
            admin = await self.authenticate_admin(self.ws, hello.token)
            if admin is None:
                raise ProtocolError("forbidden", "an admin session is required")
            person = Person(
                id=admin_person_id(admin.id),
                role="admin",
                name=admin.name,
                language=hello.language or admin.language,
                admin_id=admin.id,
            )
            await people.save(person)
            return person, None, hello
        if hello.name is not None and len(hello.name) > self.settings.support_name_max_length:
            raise ProtocolError(
                "validation_failed",
                f"`name` may have at most {self.settings.support_name_max_length} characters",
                [{"loc": ["name"], "msg": "too long", "type": "string_too_long"}],
            )
        language = hello.language or resolve_locale(self.ws.headers.get("accept-language"))
        if hello.resume is not None:
            found = await people.resume_customer(
                hello.resume, name=hello.name, language=hello.language
            )
            if found is not None:
                return found, hello.resume, hello
            # An expired token starts afresh; the client sees a new person id.
        if hello.name is None:
            raise ProtocolError(
                "validation_failed",
                "a customer's `hello` needs a `name`",
                [{"loc": ["name"], "msg": "Field required", "type": "missing"}],
            )
        person, token = await people.new_customer(hello.name, language)
        # A new customer's rooms from an old token are not theirs.
        return person, token, hello.model_copy(update={"rooms": {}, "calls": {}})

    async def _heartbeat(self, conn: Connection) -> None:
        period = self.settings.support_heartbeat_seconds
        ping = frame("ping")
        while True:
            await asyncio.sleep(period)
            if time.monotonic() - self.last_heard > 2 * period:
                await self.request_close(CLOSE_HEARTBEAT, "heartbeat missed")
                return
            conn.send(ping)

    async def _read_frames(self, conn: Connection) -> None:
        """``_loop`` in a task of its own, which ``request_close`` cancels. Its coroutine chain
        is short: each frame resumes it, and resuming the server's request task would pass
        through every middleware's frame first (about 5% of a relay's time at full load)."""
        self._main = main = asyncio.create_task(self._loop(conn), name=f"support-read-{conn.id}")
        try:
            await main  # cancelling this task cancels the reader too
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if (
                self._close_request is None
                or not main.cancelled()
                or (current is not None and current.cancelling())
            ):
                raise

    async def _loop(self, conn: Connection) -> None:
        while True:
            data = await self._receive()
            if data is None:
                return
            try:
                if self._too_large(data):
                    raise ProtocolError(
                        "frame_too_large",
                        f"frames may have at most {self.settings.support_max_frame_bytes} bytes",
                    )
                await self._dispatch(conn, parse_client_frame(data))
            except ProtocolError as exc:
                SUPPORT.frames_refused.labels(exc.code).inc()
                conn.send(error_frame(exc.code, exc.message, exc.details))
            except BackendUnavailable:
                # The state backend or the database: the client is told, the socket stays.
                SUPPORT.frames_refused.labels("support_unavailable").inc()
                conn.send(
                    error_frame(
                        "support_unavailable",
                        text("unavailable", resolve_locale(conn.person.language)),
                    )
                )

    async def _dispatch(self, conn: Connection, message: Any) -> None:
        kind = message.type
        role = conn.person.role
        if (kind in ADMIN_ONLY and role != "admin") or (
            kind in CUSTOMER_ONLY and role != "customer"
        ):
            raise ProtocolError("forbidden", f"`{kind}` is not for a {role}")
        desk = self.desk
        if isinstance(message, ChatSend):
            await desk.chat_send(conn, message.room, message.client_id, message.text)
        elif kind == "ping":
            conn.send(frame("pong"))
        elif kind == "pong":
            return
        elif isinstance(message, Typing):
            await desk.typing(conn, message.room, message.active)
        elif kind == "queue:join":
            await desk.join(conn)
        elif kind == "queue:leave":
            await desk.leave(conn)
        elif isinstance(message, PresenceSet):
            await desk.set_presence(conn.person, message.status)
        elif isinstance(message, ChatEnd):
            await desk.end_chat(conn, message.room, message.reason)
        elif isinstance(message, HistoryFetch):
            await desk.history_page(conn, message.room, message.before, message.limit)
        elif isinstance(message, MessageLeave):
            await desk.leave_message(conn, message.text, email=message.email, phone=message.phone)
        elif isinstance(message, CallbackRequest):
            await desk.request_callback(conn, message.phone, message.consent_subject)
        elif isinstance(message, Hello):
            raise ProtocolError("already_hello", "`hello` is sent once per connection")
        elif kind in RTC_KINDS:
            if self.relay is None:
                raise ProtocolError("calls_disabled", "calls are not available here")
            await self.relay.handle(conn, message)
