"""The support desk of one process: its connections, and what joins them to every other process.

State that must be shared (the waiting queue, rooms' messages, presence, people) lives in the
state backend; each process keeps only its own connections. Changes are announced on one
pub/sub channel (``SUPPORT_DESK_CHANNEL``) and each process tells its own clients. Pub/sub may
drop a notice (a reconnect), so a sweep re-reads what notices carry: queue positions (by the
queue's version), assignments of local waiting customers and presence.

Messages never travel over pub/sub: they go through the room log (a stream per room), read by
one hub per process, and each connection receives every offset exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson

from core.errors import StateBackendError
from core.i18n import Locale, resolve_locale
from core.support.eta import Eta, estimate
from core.support.texts import text
from service.backends import Backends
from service.backends.health_log import outage_logged
from service.backends.keys import (
    SUPPORT_CLIENT_ID,
    SUPPORT_CLIENT_ID_TTL,
    SUPPORT_DESK_CHANNEL,
    SUPPORT_PRESENCE,
    SUPPORT_PRESENCE_STALE,
)
from service.db import Database
from service.logging import get_logger
from service.support import history
from service.support.connection import Connection, RoomView
from service.support.hub import RoomHub
from service.support.metrics import SUPPORT
from service.support.people import People, Person
from service.support.protocol import ProtocolError, frame
from service.support.roomlog import RoomEntry, RoomLog
from service.support.settings import SupportSettings
from service.support.waitqueue import Assigned, Assignment, Full, Waiting, WaitQueue
from service.whatsapp.crm import convo_lists_changed

log = get_logger("kervan.support.desk")

Notifier = Callable[[Person, int], Any]
PRESENCE_COALESCE_SECONDS = 0.05
#: Sweeps between two re-offers of stray admins: the check reads every assignment, a few
#: milliseconds of the serving loop with hundreds of admins, and repairs a rare state.
REASSERT_EVERY_SWEEPS = 5


class SupportDesk:
    def __init__(
        self,
        settings: SupportSettings,
        backends: Backends,
        db: Database,
        queue: WaitQueue,
        rooms: RoomLog,
        hub: RoomHub,
        *,
        clock: Callable[[], float] = time.time,
        notify_waiting: Notifier | None = None,
        callback_allowed: Callable[[str | None, str], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.backends = backends
        self.db = db
        self.queue = queue
        self.rooms = rooms
        self.hub = hub
        self.people = People(backends, resume_ttl=settings.support_resume_ttl_seconds)
        self.clock = clock
        self._notify_waiting = notify_waiting
        self._callback_allowed = callback_allowed
        self.local: dict[str, set[Connection]] = defaultdict(set)
        self._tasks: list[asyncio.Task[None]] = []
        self._queue_version = -1
        self._sweeps_to_reassert = 0
        self._refresh_pending = False
        self._presence_pending = False
        self._presence_cache: dict[str, dict[str, Any]] = {}
        self._customers: dict[str, history.Customer] = {}
        self._messages = {role: SUPPORT.messages.labels(role) for role in ("customer", "admin")}
        self.listening = asyncio.Event()
        #: Called with each room closed (on every process that hears of it).
        self.room_closed_hooks: list[Callable[[str], None]] = []

    async def _crm_lists_changed(self) -> None:
        """Chats, left messages and call-back requests are CRM conversations (channel web)."""
        await convo_lists_changed(self.backends)

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="support-desk-listen"),
            asyncio.create_task(self._sweep_forever(), name="support-desk-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # --- announcements --------------------------------------------------------------------
    async def publish(self, event: dict[str, Any]) -> None:
        try:
            await self.backends.pubsub.publish(SUPPORT_DESK_CHANNEL, orjson.dumps(event))
        except StateBackendError as exc:
            # The sweep repairs what a lost notice would have told.
            log.warning("support notice %s not published: %s", event.get("e"), exc)

    async def _listen(self) -> None:
        delay = 0.05
        while True:
            try:
                async with self.backends.pubsub.subscribe(SUPPORT_DESK_CHANNEL) as sub:
                    self.listening.set()
                    delay = 0.05
                    # Anything announced while not listening is re-read now, and online admins
                    # are offered again (the backend may have lost its data meanwhile).
                    self._schedule_refresh()
                    asyncio.get_running_loop().create_task(self._reassert_admins())
                    async for _channel, message in sub:
                        try:
                            await self._on_event(orjson.loads(message))
                        except Exception:
                            log.exception("support notice failed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                log.warning("support desk listener lost (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("e")
        if kind == "queue":
            self._schedule_refresh()
        elif kind == "assigned":
            try:
                await self._tell_assigned(event["customer"], event["admin"])
            finally:
                # A member not told (the state backend failed meanwhile) is joined by it.
                self._schedule_refresh()
        elif kind == "closed":
            self._tell_closed(event["room"], event["reason"], event["members"])
            self._schedule_refresh()
        elif kind == "presence":
            self._schedule_presence()
        elif kind == "typing":
            payload = frame(
                "typing", room=event["room"], sender=event["sender"], active=event["active"]
            )
            for connections in self.local.values():
                for conn in connections:
                    if event["room"] in conn.rooms and conn.person.id != event["sender"]:
                        conn.send(payload)
        elif kind == "timeout":
            self._tell_timeout(event["customer"])
        elif kind == "left":
            for conn in self.local.get(event["customer"], ()):
                conn.told_position = None
                conn.wants_room = False
                conn.send(frame("queue:left", reason=event["reason"]))

    # --- connections ----------------------------------------------------------------------
    async def attach(self, conn: Connection) -> None:
        first = not self.local.get(conn.person.id)
        self.local[conn.person.id].add(conn)
        SUPPORT.connections.labels(conn.person.role).inc()
        if conn.person.role == "admin":
            if first:
                await self.set_presence(conn.person, "online")
            await self._admin_take_room(conn)
            conn.last_presence = await self._presence_frame(conn.person)
            conn.send(conn.last_presence)
            await self._send_desk_state([conn])
        else:
            await self._customer_take_room(conn)
            conn.last_presence = await self._presence_frame(conn.person)
            conn.send(conn.last_presence)

    async def detach(self, conn: Connection) -> None:
        connections = self.local.get(conn.person.id)
        if connections is not None:
            connections.discard(conn)
            if not connections:
                del self.local[conn.person.id]
        SUPPORT.connections.labels(conn.person.role).dec()
        if conn.person.id in self.local:
            return
        # The person's last connection went.
        try:
            if conn.person.role == "admin":
                self._presence_cache.pop(conn.person.id, None)
                await self.queue.admin_away(conn.person.id)
                await self.backends.hashes.delete(SUPPORT_PRESENCE, conn.person.id)
                await self.publish({"e": "presence"})
            elif await self.queue.position(conn.person.id) is not None:
                until = self.clock() + self.settings.support_grace_seconds
                if await self.queue.mark_disconnected(conn.person.id, until=until):
                    await self.publish({"e": "queue"})
        except StateBackendError as exc:
            log.warning("support clean-up of %s deferred to the sweep: %s", conn.person.id, exc)

    # --- the queue ------------------------------------------------------------------------
    def _locale(self, person: Person) -> Locale:
        return resolve_locale(person.language)

    async def estimator(self) -> Callable[[int], Eta]:
        """The ETA of any position, from one read of the handle times and of who is serving
        (a refresh tells many customers their position from the same reads)."""
        stats = await self.queue.handle_stats()
        now = self.clock()
        # Every process's admins: each busy one is expected free after its remaining time.
        talked = [now - a.assigned_at for a in await self.queue.assignments()]

        def eta(position: int) -> Eta:
            return estimate(
                position,
                stats.ewma if stats else None,
                default_handle=self.settings.support_default_handle_seconds,
                free_soon=talked,
                spread=stats.spread if stats else None,
            )

        return eta

    async def eta(self, position: int) -> Eta:
        return (await self.estimator())(position)

    @staticmethod
    def eta_fields(position: int, eta: Eta) -> dict[str, Any]:
        return {
            "position": position,
            "eta_seconds": round(eta.seconds, 1),
            "eta_low": round(eta.low, 1),
            "eta_high": round(eta.high, 1),
        }

    async def _eta_fields(self, position: int) -> dict[str, Any]:
        return self.eta_fields(position, await self.eta(position))

    async def join(self, conn: Connection) -> None:
        person = conn.person
        locale = self._locale(person)
        try:
            capacity = self.settings.support_queue_capacity
            if not self.settings.support_queue_enabled:
                # Busy means refused: no one may wait, so only a free admin takes the customer.
                capacity = 0
            result = await self.queue.join(person.id, capacity=capacity, now=self.clock())
        except StateBackendError:
            SUPPORT.refused.labels("unavailable").inc()
            conn.send(
                frame(
                    "queue:refused",
                    reason="unavailable",
                    message=text("unavailable", locale),
                    eta_seconds=None,
                )
            )
            return
        if isinstance(result, Assigned):
            SUPPORT.joins.labels("assigned").inc()
            # Until a room is joined: a tell that fails leaves the refresh to join it.
            for each in self.local.get(person.id, ()):
                each.wants_room = True
            await self._announce_assigned(person.id, result.admin)
            # This process's own connections need not wait for the notice to come back.
            await self._tell_assigned(person.id, result.admin)
        elif isinstance(result, Waiting):
            SUPPORT.joins.labels("waiting").inc()
            for each in self.local.get(person.id, ()):
                each.wants_room = True
            fields = await self._eta_fields(result.position)
            for each in self.local.get(person.id, ()):
                each.told_position = result.position
                each.send(frame("queue:joined", **fields))
            await self.publish({"e": "queue"})
            if self._notify_waiting is not None:
                try:
                    await self._notify_waiting(person, result.position)
                except Exception as exc:
                    log.warning("new-customer notification not queued: %s", exc)
        else:
            assert isinstance(result, Full)
            reason = "full" if self.settings.support_queue_enabled else "all_busy"
            SUPPORT.refused.labels(reason).inc()
            eta = await self.eta(max(result.waiting, 1))
            conn.send(
                frame(
                    "queue:refused",
                    reason=reason,
                    message=text(
                        "queue_full" if reason == "full" else "all_busy",
                        locale,
                        eta_seconds=eta.seconds,
                    ),
                    eta_seconds=round(eta.seconds, 1),
                )
            )

    async def leave(self, conn: Connection) -> None:
        if await self._guard(conn, self.queue.leave(conn.person.id)):
            for each in self.local.get(conn.person.id, ()):
                each.told_position = None
                each.wants_room = False
                each.send(frame("queue:left", reason="left"))
            await self.publish({"e": "queue"})

    async def _guard(self, conn: Connection, operation: Any) -> Any:
        try:
            return await operation
        except StateBackendError:
            conn.send(
                frame(
                    "error",
                    code="support_unavailable",
                    message=text("unavailable", self._locale(conn.person)),
                    details=None,
                )
            )
            return None

    async def _announce_assigned(self, customer: str, admin: str) -> None:
        await self.publish(
            {"e": "assigned", "customer": customer, "admin": admin, "at": self.clock()}
        )

    async def admin_ready(self, admin: Person) -> None:
        customer = await self.queue.admin_ready(admin.id, now=self.clock())
        if customer is not None:
            SUPPORT.joins.labels("served_from_queue").inc()
            await self._announce_assigned(customer, admin.id)
            await self.publish({"e": "queue"})
        await self.publish({"e": "presence"})

    async def set_presence(self, admin: Person, status: str) -> None:
        record = {"status": status, "seen": self.clock(), "name": admin.name}
        self._presence_cache[admin.id] = record
        await self.backends.hashes.set(SUPPORT_PRESENCE, {admin.id: orjson.dumps(record)})
        if status == "online":
            await self.admin_ready(admin)
        else:
            await self.queue.admin_away(admin.id)
            await self.publish({"e": "presence"})

    async def end_chat(self, conn: Connection, room: str, reason: str) -> None:
        person = conn.person
        if room not in conn.rooms:
            raise ProtocolError("not_in_room", f"you are not in room {room!r}")
        if person.role == "admin":
            admin: str | None = person.id
            serving = await self.queue.assignment_of_admin(person.id)
        else:
            admin = await self.queue.assignment_of_customer(room)
            serving = room if admin is not None else None
        if admin is None or serving != room:
            # The state backend no longer knows this chat (its data was lost): close it
            # wherever it is still open, rather than leave both sides in a dead room.
            members = [room, person.id] if admin is None else [room, admin]
            await self.publish(
                {"e": "closed", "room": room, "reason": reason, "admin": admin, "members": members}
            )
            self._tell_closed(room, reason, members)
            return
        customer = await self.queue.finish(admin, now=self.clock())
        if customer is None:
            return
        SUPPORT.chats_ended.labels(reason).inc()
        await self.publish(
            {
                "e": "closed",
                "room": room,
                "reason": reason,
                "admin": admin,
                "members": [customer, admin],
            }
        )
        # This process's members are told at once, whether or not the notice comes back.
        self._tell_closed(room, reason, [customer, admin])
        record = await self._presence_of(admin)
        if record is not None and record.get("status") == "online":
            taken = await self.queue.admin_ready(admin, now=self.clock())
            if taken is not None:
                await self._announce_assigned(taken, admin)
                await self.publish({"e": "queue"})
        await self.publish({"e": "presence"})

    # --- rooms ----------------------------------------------------------------------------
    async def _admin_take_room(self, conn: Connection, after: int | None = None) -> None:
        customer = await self.queue.assignment_of_admin(conn.person.id)
        if customer is not None and customer not in conn.rooms:
            await self.join_room(conn, customer, peer_id=customer, after=after)

    async def _customer_take_room(self, conn: Connection) -> None:
        admin = await self.queue.assignment_of_customer(conn.person.id)
        if admin is not None and conn.person.id not in conn.rooms:
            await self.join_room(conn, conn.person.id, peer_id=admin, after=None)
        elif admin is None:
            position = await self.queue.position(conn.person.id)
            if position is not None:
                await self.queue.mark_connected(conn.person.id)
                conn.told_position = position
                conn.wants_room = True
                conn.send(frame("queue:position", **(await self._eta_fields(position))))

    async def join_room(
        self,
        conn: Connection,
        room: str,
        *,
        peer_id: str,
        after: int | None,
        announce: bool = True,
    ) -> None:
        """Subscribe ``conn`` to ``room``: every offset after ``after`` (None: everything the
        stream still holds, for a new device). Joining a room twice does nothing."""
        if room in conn.rooms:
            return
        # Claimed before the first await, so a notice and a sweep racing cannot join twice.
        view = RoomView(epoch="", subscription=None)
        conn.rooms[room] = view
        wanted, conn.wants_room = conn.wants_room, False
        try:
            await self._subscribe(conn, room, view, peer_id=peer_id, after=after, announce=announce)
        except BaseException:
            # Not joined after all: the claim is given back, so a later refresh joins it.
            if conn.rooms.get(room) is view:
                del conn.rooms[room]
                conn.wants_room = wanted
            raise

    async def _subscribe(
        self,
        conn: Connection,
        room: str,
        view: RoomView,
        *,
        peer_id: str,
        after: int | None,
        announce: bool,
    ) -> None:
        epoch, last = await self.rooms.epoch(room)
        view.epoch = epoch
        start = 0 if after is None else after
        if announce:
            names = await self.people.names([peer_id])
            peer_role = "admin" if peer_id.startswith("ad_") else "customer"
            if peer_role == "admin" and conn.person.role == "customer":
                conn.send(frame("queue:ready", room=room, admin=peer_id, admin_name=names[peer_id]))
            conn.send(
                frame(
                    "room:joined",
                    room=room,
                    epoch=epoch,
                    offset=last,
                    peer={"id": peer_id, "name": names[peer_id], "role": peer_role},
                )
            )

        def reset(new_epoch: str, last_offset: int) -> None:
            view.epoch = new_epoch
            conn.send(
                frame(
                    "resume",
                    room=room,
                    recovered=False,
                    epoch=new_epoch,
                    last_offset=last_offset,
                    history_before=None,
                )
            )

        view.subscription = self.hub.subscribe(
            room, conn.sink(room), after=start, epoch=epoch, on_reset=reset
        )

    async def resume_room(self, conn: Connection, room: str, epoch: str, offset: int) -> None:
        """A reconnecting client names a room and its last delivered offset: it gets exactly
        what it missed (first the ``resume`` frame), or ``recovered: false`` and a cursor."""
        replay = await self.rooms.since(room, epoch, offset, limit=1)
        peer = await self._peer_of(conn, room)
        if peer is None:
            conn.send(frame("room:closed", room=room, reason="not_a_member"))
            return
        if replay.recovered:
            conn.send(
                frame(
                    "resume",
                    room=room,
                    recovered=True,
                    epoch=replay.epoch,
                    last_offset=replay.last_offset,
                    history_before=None,
                )
            )
            await self.join_room(conn, room, peer_id=peer, after=offset, announce=False)
        else:
            conn.send(
                frame(
                    "resume",
                    room=room,
                    recovered=False,
                    epoch=replay.epoch,
                    last_offset=replay.last_offset,
                    history_before=None,
                )
            )
            await self.join_room(conn, room, peer_id=peer, after=replay.last_offset, announce=False)

    async def peer_of(self, conn: Connection, room: str) -> str | None:
        """The other member of ``room`` if ``conn``'s person is in it now ("" for a customer
        whose room has no admin), else None."""
        return await self._peer_of(conn, room)

    async def _peer_of(self, conn: Connection, room: str) -> str | None:
        if conn.person.role == "customer":
            if room != conn.person.id:
                return None
            return await self.queue.assignment_of_customer(room) or ""
        customer = await self.queue.assignment_of_admin(conn.person.id)
        return customer if customer == room else None

    async def _tell_assigned(self, customer: str, admin: str) -> None:
        for conn in list(self.local.get(customer, ())):
            conn.told_position = None
            if customer not in conn.rooms:
                await self.join_room(conn, customer, peer_id=admin, after=None)
        for conn in list(self.local.get(admin, ())):
            if customer not in conn.rooms:
                await self.join_room(conn, customer, peer_id=customer, after=None)

    def _tell_closed(self, room: str, reason: str, members: list[str]) -> None:
        for hook in self.room_closed_hooks:
            hook(room)
        for member in members:
            for conn in self.local.get(member, ()):
                view = conn.rooms.pop(room, None)
                if view is not None:
                    if view.subscription is not None:
                        view.subscription.close()
                    conn.send(frame("room:closed", room=room, reason=reason))

    def _tell_timeout(self, customer: str) -> None:
        for conn in self.local.get(customer, ()):
            conn.told_position = None
            conn.wants_room = False
            options = ["message:leave"]
            if self._callback_allowed is not None:
                options.append("callback:request")
            conn.send(
                frame(
                    "queue:timeout",
                    message=text("max_wait", self._locale(conn.person)),
                    options=options,
                )
            )

    # --- chat -----------------------------------------------------------------------------
    async def chat_send(self, conn: Connection, room: str, client_id: str, body: str) -> None:
        person = conn.person
        view = conn.rooms.get(room)
        if view is None:
            raise ProtocolError("not_in_room", f"you are not in room {room!r}")
        self._check_length(body)
        at = self.clock()
        payload = orjson.dumps(
            {
                "sender": person.id,
                "role": person.role,
                "name": person.name,
                "text": body,
                "client_id": client_id,
                "at": at,
            }
        )
        record = history.ChatRecord(
            customer=await self._customer_of(room, person),
            sender=person.id,
            role=person.role,
            client_id=client_id,
            text=body,
            at=at,
        )
        # One step in the state backend: stored once per client id (with its record for the
        # database's writer), or its earlier place.
        epoch, offset, duplicate = await self.rooms.append_once(
            room,
            payload,
            marker=f"{SUPPORT_CLIENT_ID}:{person.id}:{client_id}",
            marker_ttl=SUPPORT_CLIENT_ID_TTL,
            record=record.encode(),
        )
        if duplicate:
            SUPPORT.duplicates.inc()
        else:
            # The sender learns the place from its ack; its other connections get the message.
            conn.acknowledged(room, epoch, offset)
            self.hub.deliver_local(
                RoomEntry(room=room, offset=offset, payload=payload, epoch=epoch)
            )
            self._messages[person.role].inc()
        conn.send(
            frame(
                "chat:ack",
                client_id=client_id,
                room=room,
                epoch=epoch,
                offset=offset,
                duplicate=duplicate,
            )
        )

    def _check_length(self, body: str) -> None:
        limit = self.settings.support_message_max_length
        if len(body) > limit:
            raise ProtocolError(
                "validation_failed",
                f"a message may have at most {limit} characters",
                [{"loc": ["text"], "msg": f"at most {limit} characters", "type": "too_long"}],
            )

    async def _customer_of(self, room: str, person: Person) -> history.Customer:
        """The customer a room belongs to (its id is the room's), as the CRM contact shows it."""
        if person.id == room:
            return history.Customer(room, person.name, person.language)
        known = self._customers.get(room)
        if known is None:
            found = await self.people.get(room)
            known = history.Customer(
                room, found.name if found else room, found.language if found else "tr"
            )
            if len(self._customers) > 50_000:
                self._customers.clear()
            self._customers[room] = known
        return known

    async def typing(self, conn: Connection, room: str, active: bool) -> None:
        if room not in conn.rooms:
            raise ProtocolError("not_in_room", f"you are not in room {room!r}")
        await self.publish(
            {"e": "typing", "room": room, "sender": conn.person.id, "active": active}
        )

    async def leave_message(
        self, conn: Connection, body: str, *, email: str | None, phone: str | None
    ) -> None:
        person = conn.person
        self._check_length(body)
        payload = {"email": email, "phone": phone, "source": "support"}
        convo = await history.store_message(
            self.db, await self._customer_of(person.id, person), text=body, payload=payload
        )
        await self._crm_lists_changed()
        await self._leave_queue_quietly(person)
        SUPPORT.left_messages.inc()
        conn.send(
            frame(
                "message:stored",
                conversation=convo,
                message=text("message_stored", self._locale(person)),
            )
        )

    async def request_callback(self, conn: Connection, phone: str, subject: str | None) -> None:
        person = conn.person
        allowed = False
        if self._callback_allowed is not None:
            allowed = bool(await self._callback_allowed(subject, phone))
        if not allowed:
            raise ProtocolError(
                "consent_required", text("callback_needs_consent", self._locale(person))
            )
        convo = await history.store_message(
            self.db,
            await self._customer_of(person.id, person),
            text=f"WhatsApp call back requested: {phone}",
            kind="callback_request",
            payload={"phone": phone, "consent_subject": subject},
        )
        await self._crm_lists_changed()
        await self._leave_queue_quietly(person)
        SUPPORT.callbacks.inc()
        conn.send(
            frame(
                "callback:stored",
                conversation=convo,
                message=text("callback_stored", self._locale(person)),
            )
        )

    async def _leave_queue_quietly(self, person: Person) -> None:
        """Out of the queue after a left message or a call-back request (if still in it)."""
        with contextlib.suppress(StateBackendError):
            if await self.queue.leave(person.id):
                for each in self.local.get(person.id, ()):
                    each.told_position = None
                    each.wants_room = False
                    each.send(frame("queue:left", reason="left"))
                await self.publish({"e": "queue"})

    async def history_page(
        self, conn: Connection, room: str, before: str | None, limit: int
    ) -> None:
        if (conn.person.role == "customer" and room != conn.person.id) or (
            conn.person.role == "admin" and room not in conn.rooms
        ):
            raise ProtocolError("not_in_room", f"you may not read room {room!r}")
        cursor = None
        if before:
            cursor = history.parse_cursor(before)
            if cursor is None:
                raise ProtocolError(
                    "invalid_cursor", "`before` must be a `next_before` from history:page"
                )
        items, next_before = await history.history_page(self.db, room, before=cursor, limit=limit)
        conn.send(
            frame(
                "history:page",
                room=room,
                messages=items,
                next_before=next_before,
            )
        )

    # --- presence and desk views -----------------------------------------------------------
    async def _presence_of(self, admin: str) -> dict[str, Any] | None:
        raw = await self.backends.hashes.get(SUPPORT_PRESENCE, admin)
        return orjson.loads(raw) if raw else None

    async def _presence_records(self) -> tuple[dict[str, str], list[str]]:
        """Admin id -> status for admins beaten lately, and the admins not beaten for
        ``SUPPORT_PRESENCE_STALE`` sweeps (their process went, or a beat raced a logout)."""
        horizon = self.clock() - (self.settings.support_sweep_seconds * SUPPORT_PRESENCE_STALE + 1)
        fresh: dict[str, str] = {}
        stale: list[str] = []
        for admin, value in (await self.backends.hashes.get_all(SUPPORT_PRESENCE)).items():
            record = orjson.loads(value)
            if record["seen"] >= horizon:
                fresh[admin] = record["status"]
            else:
                stale.append(admin)
        return fresh, stale

    async def presence(self) -> dict[str, str]:
        """Admin id -> effective status (``busy`` while serving), stale entries left out."""
        found, _stale = await self._presence_records()
        if found:
            serving = {a.admin for a in await self.queue.assignments()}
            for admin in serving & found.keys():
                if found[admin] == "online":
                    found[admin] = "busy"
        return found

    async def _reassert_admins(self, free: list[str] | None = None) -> None:
        """Local admins who are online but neither free nor serving (the state backend lost
        its data, or a missed beat sent them away) take customers again."""
        try:
            if free is None:
                free = await self.queue.free_admins()
            serving = {a.admin for a in await self.queue.assignments()}
            free_now = set(free)
            for admin, conns in list(self.local.items()):
                record = self._presence_cache.get(admin)
                online = record is not None and record.get("status") == "online"
                if online and conns and admin not in free_now and admin not in serving:
                    person = next(iter(conns)).person
                    await self.people.save(person)
                    await self.admin_ready(person)
        except StateBackendError as exc:
            log.warning("support admins not re-offered yet: %s", exc)

    async def _drop_stale_presence(self, stale: list[str]) -> None:
        """Stale admins (not served by this process) are removed, and everyone is told."""
        gone = [admin for admin in stale if admin not in self.local]
        if gone:
            await self.backends.hashes.delete(SUPPORT_PRESENCE, *gone)
            await self.publish({"e": "presence"})

    async def _presence_frame(self, person: Person) -> bytes:
        try:
            statuses = await self.presence()
        except StateBackendError:
            statuses = {}
        available = sum(1 for s in statuses.values() if s == "online")
        return frame(
            "presence",
            admins=statuses if person.role == "admin" else {},
            available=available,
            online=len(statuses),
        )

    def _schedule_presence(self) -> None:
        """Presence notices come in bursts (admins logging in, chats handed over): one view
        for all of a burst, a moment later."""
        if self._presence_pending:
            return
        self._presence_pending = True

        async def tell() -> None:
            await asyncio.sleep(PRESENCE_COALESCE_SECONDS)
            self._presence_pending = False
            try:
                await self._tell_presence()
            except StateBackendError as exc:
                log.warning("support presence not told: %s", exc)

        asyncio.get_running_loop().create_task(tell())

    async def _tell_presence(self) -> None:
        if not self.local:
            return
        statuses = await self.presence()
        available = sum(1 for s in statuses.values() if s == "online")
        for_admins = frame("presence", admins=statuses, available=available, online=len(statuses))
        for_customers = frame("presence", admins={}, available=available, online=len(statuses))
        admins: list[Connection] = []
        for connections in self.local.values():
            for conn in connections:
                shown = for_admins if conn.person.role == "admin" else for_customers
                if conn.person.role == "admin":
                    admins.append(conn)
                if shown != conn.last_presence:
                    conn.last_presence = shown
                    conn.send(shown)
        await self._send_desk_state(admins)

    async def _send_desk_state(
        self, admins: list[Connection], assignments: list[Assignment] | None = None
    ) -> None:
        if not admins:
            return
        if assignments is None:
            assignments = await self.queue.assignments()
        waiting = await self.queue.waiting()
        now = self.clock()
        names = await self.people.names([w.customer for w in waiting])
        listed = [
            {
                "customer": w.customer,
                "name": names[w.customer],
                "waited_seconds": round(max(now - w.joined_at, 0.0), 1),
            }
            for w in waiting
        ]
        serving_since = {a.admin: (a.customer, a.assigned_at) for a in assignments}
        local = {conn.person.id for conn in admins}
        served = [c for admin, (c, _) in serving_since.items() if admin in local]
        served_names = await self.people.names(served)
        waiting_ids = tuple(w.customer for w in waiting)
        for conn in admins:
            serving = None
            found = serving_since.get(conn.person.id)
            # Sent when what the admin sees changed (times are counted on from the last view).
            signature = (found[0] if found else None, waiting_ids)
            if signature == conn.desk_signature:
                continue
            conn.desk_signature = signature
            if found is not None:
                customer, since = found
                serving = {
                    "customer": customer,
                    "name": served_names[customer],
                    "room": customer,
                    "talk_seconds": round(max(now - since, 0.0), 1),
                }
            conn.send(frame("desk:state", serving=serving, waiting=listed))

    # --- the sweep ------------------------------------------------------------------------
    def _schedule_refresh(self) -> None:
        if self._refresh_pending:
            return
        self._refresh_pending = True
        asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        """Tell local waiting customers their position and local admins the desk view."""
        self._refresh_pending = False
        try:
            await self._refresh_views()
        except StateBackendError as exc:
            # The sweep looks again: the version it compares with is not one seen.
            self._queue_version = -1
            if not outage_logged(exc, "support refresh"):
                log.warning("support refresh skipped: %s", exc)

    async def _refresh_views(self) -> None:
        # The version first: a change after it makes the sweep refresh again.
        version = await self.queue.version()
        waiting = await self.queue.waiting()
        # One read of every assignment, not one per admin: a refresh follows every change of
        # the desk, and a process may hold hundreds of admins.
        assignments = await self.queue.assignments()
        assigned = {a.admin for a in assignments}
        served = {a.customer for a in assignments}
        positions = {w.customer: index for index, w in enumerate(waiting, start=1)}
        admins: list[Connection] = []
        eta: Callable[[int], Eta] | None = None
        for person_id, connections in list(self.local.items()):
            for conn in list(connections):
                if conn.person.role == "admin":
                    admins.append(conn)
                    if not conn.rooms and person_id in assigned:
                        # An assignment notice may have been lost (pub/sub reconnecting).
                        await self._admin_take_room(conn)
                    continue
                if conn.wants_room and not conn.rooms and person_id not in positions:
                    if person_id in served:
                        await self._customer_take_room(conn)
                    continue
                position = positions.get(person_id)
                if position is not None and position != conn.told_position:
                    conn.told_position = position
                    eta = eta or await self.estimator()
                    conn.send(frame("queue:position", **self.eta_fields(position, eta(position))))
                elif (
                    position is None
                    and conn.told_position is not None
                    and person_id not in conn.rooms
                    and person_id in served
                ):
                    # No longer waiting and not told why: an assignment notice was lost.
                    await self._customer_take_room(conn)
        await self._send_desk_state(admins, assignments)
        self._queue_version = version

    async def sweep(self) -> None:
        """One pass; every process runs it, each step is atomic in the state backend."""
        now = self.clock()
        local_admins = [pid for pid, conns in self.local.items() if conns and pid.startswith("ad_")]
        if local_admins:
            beats: dict[str, bytes] = {}
            for admin in local_admins:
                record = self._presence_cache.get(admin)
                if record is not None:
                    record["seen"] = now
                    beats[admin] = orjson.dumps(record)
            if beats:
                await self.backends.hashes.set(SUPPORT_PRESENCE, beats)
        gone = await self.queue.expire_disconnected(now=now)
        for customer in gone:
            SUPPORT.abandoned.labels("grace_expired").inc()
            await self.publish({"e": "left", "customer": customer, "reason": "grace_expired"})
        timed_out = await self.queue.expire_waited(
            now=now, max_wait=self.settings.support_max_wait_seconds
        )
        for customer in timed_out:
            SUPPORT.abandoned.labels("max_wait").inc()
            await self.publish({"e": "timeout", "customer": customer})
        if gone or timed_out:
            await self.publish({"e": "queue"})
        # Free admins whose process stopped beating leave the free set. The free set is read
        # first: an admin logging in meanwhile writes its presence before joining the set, so
        # it is either not in this free list or already in the statuses read after it.
        free = await self.queue.free_admins()
        statuses, stale = await self._presence_records()
        for admin in free:
            if admin not in statuses:
                await self.queue.admin_away(admin)
        # A repair (the backend lost its data, a beat was missed): every few sweeps, since
        # it reads every assignment; the listener also runs it after each reconnect.
        self._sweeps_to_reassert -= 1
        if self._sweeps_to_reassert <= 0:
            self._sweeps_to_reassert = REASSERT_EVERY_SWEEPS
            await self._reassert_admins(free)
        await self._drop_stale_presence(stale)
        if await self.queue.version() != self._queue_version:
            self._schedule_refresh()
        SUPPORT.waiting.set(len(await self.queue.waiting()))

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.support_sweep_seconds)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except StateBackendError as exc:
                if not outage_logged(exc, "support sweep"):
                    log.warning("support sweep skipped: %s", exc)
            except Exception:
                log.exception("support sweep failed")
