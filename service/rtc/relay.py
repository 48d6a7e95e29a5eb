"""The signaling relay of one process: call frames from this process's ``/ws/support``
connections into the signaling store, and the store's messages out to them, reliably.

Each connection in a call has a *link*: a receive window (the client's uplink: in order, once,
gaps held until filled) and a send window (the downlink: what was sent and not acknowledged,
with its retransmit deadlines). Both are the compiled windows of ``native.sigwindow``; the
store holds what must survive the connection (the outboxes, the last sequence taken), so a
client that reconnects to another process resumes there.

A message taken for a member on another process reaches it through a notice on
``RTC_CHANNEL``: that process reads the member's outbox after what its link has sent. A notice
lost while a listener reconnects costs nothing: after every (re)subscription every link reads
its outbox again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from core.errors import StateBackendError
from native.sigwindow import ReceiveWindow, SendWindow, WindowOverflow
from service.backends import Backends
from service.backends.health_log import outage_logged
from service.backends.keys import RTC_CHANNEL
from service.logging import get_logger
from service.rtc import metrics as m
from service.rtc.signals import Signal, SignalOutcome, SignalStore
from service.settings import Settings
from service.support.connection import Connection
from service.support.desk import SupportDesk
from service.support.protocol import ProtocolError, frame
from service.support.protocol_rtc import (
    NOT_RELAYED,
    CallPosition,
    CallStart,
    CallStats,
    RtcAck,
    SignalMessage,
)

log = get_logger("kervan.rtc.relay")

#: The person id of the server when it ends a call itself.
SERVER = "kervan"
SWEEP_SECONDS = 1.0
ACTIVE_REFRESH_SECONDS = 5.0
#: Recent quality reports kept for ``/ready`` (mean RTT, regions in use).
RECENT_REPORTS = 256
REGION_SEEN_SECONDS = 600.0


def downlink_frame(seq: int, payload: bytes) -> bytes:
    """A stored message as sent: its JSON object with the recipient's ``seq`` spliced first."""
    return b'{"seq":%d,' % seq + payload[1:]


@dataclass(eq=False)
class CallLink:
    conn: Connection
    room: str
    call: str
    peer: str
    send: SendWindow
    recv: ReceiveWindow
    #: The highest downlink sequence handed to this connection.
    sent: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: The TURN region the client last reported (a change is a failover).
    region: str | None = None

    @property
    def person(self) -> str:
        return self.conn.person.id


class SignalRelay:
    """A runtime component: ``start()`` runs the notice listener and the timer."""

    def __init__(
        self,
        settings: Settings,
        backends: Backends,
        store: SignalStore,
        desk: SupportDesk,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.backends = backends
        self.store = store
        self.desk = desk
        self.clock = clock
        self.monotonic = monotonic
        self.links: dict[tuple[int, str], CallLink] = {}
        self._source = secrets.token_hex(6)
        self._tasks: list[asyncio.Task[None]] = []
        self._rtts: deque[float] = deque(maxlen=RECENT_REPORTS)
        self._regions: dict[str, float] = {}
        self._active = 0
        self._failovers = 0
        self._background: set[asyncio.Task[None]] = set()
        self.listening = asyncio.Event()
        desk.room_closed_hooks.append(self._on_room_closed)

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="rtc-listen"),
            asyncio.create_task(self._timer(), name="rtc-timer"),
        ]

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def _now_ms(self) -> int:
        return int(self.monotonic() * 1000)

    def _new_link(self, conn: Connection, room: str, call: str, peer: str) -> CallLink:
        s = self.settings
        link = CallLink(
            conn=conn,
            room=room,
            call=call,
            peer=peer,
            send=SendWindow(s.rtc_window_size, s.rtc_retransmit_ms, s.rtc_retransmit_max_ms),
            recv=ReceiveWindow(s.rtc_window_size),
        )
        self.links[(conn.id, call)] = link
        return link

    def detach(self, conn: Connection) -> None:
        for key in [k for k in self.links if k[0] == conn.id]:
            del self.links[key]

    # --- from the client ------------------------------------------------------------------
    async def _room_of(self, conn: Connection) -> str | None:
        person = conn.person
        if person.role == "customer":
            return person.id
        return await self.desk.queue.assignment_of_admin(person.id)

    async def _link_for(self, conn: Connection, call: str, start: CallStart | None) -> CallLink:
        link = self.links.get((conn.id, call))
        if link is not None:
            return link
        person = conn.person.id
        if start is not None:
            peer = await self.desk.peer_of(conn, start.room)
            if not peer:
                raise ProtocolError("not_in_room", f"you are not in room {start.room!r}")
            info = await self.store.info(start.room, call)
            if info is None:
                return self._new_link(conn, start.room, call, peer)
            room = start.room
        else:
            room = await self._room_of(conn) or ""
            info = await self.store.info(room, call) if room else None
        if info is None or info.peer_of(person) is None:
            raise ProtocolError(
                "not_in_call",
                f"you are not a member of call {call!r} (resume it with hello.calls)",
                {"call": call},
            )
        link = self._new_link(conn, room, call, info.peer_of(person) or "")
        link.recv.reset(info.received.get(person, 0))
        link.sent = info.acked.get(person, 0)
        return link

    async def handle(self, conn: Connection, message: SignalMessage | RtcAck) -> None:
        if isinstance(message, RtcAck):
            await self._client_ack(conn, message)
            return
        start = message if isinstance(message, CallStart) else None
        link = await self._link_for(conn, message.call, start)
        try:
            _, deliverable = link.recv.receive(message.seq, message)
        except WindowOverflow:
            m.OVERFLOWS.labels("receive").inc()
            raise ProtocolError(
                "window_overflow",
                "too many frames ahead of a missing one; resend from the acknowledged one",
                {"call": link.call, "ack": link.recv.delivered},
            ) from None
        try:
            for _, taken in deliverable:
                outcome = await self._take(link, cast(SignalMessage, taken))
                if outcome.status in ("gap", "overflow"):
                    # Not taken: the client resends from what the store has.
                    link.recv.reset(outcome.received)
                    break
        finally:
            link.conn.send(
                frame("rtc:ack", call=link.call, ack=link.recv.delivered, sack=link.recv.sacks())
            )

    async def _take(self, link: CallLink, message: SignalMessage) -> SignalOutcome:
        person = link.conn.person
        kind = message.type
        relay = kind not in NOT_RELAYED and not (kind == "call:stats" and person.role == "admin")
        stats = message if isinstance(message, CallStats) else None
        body = message.model_dump(mode="json", exclude={"seq"})
        body["from"] = person.id
        signal = Signal(
            room=link.room,
            call=link.call,
            sender=person.id,
            recipient=link.peer,
            kind=kind,
            seq=message.seq,
            payload=orjson.dumps(body),
            relay=relay,
            media=getattr(message, "media", "audio"),
            connected=stats is not None and stats.setup_ms is not None,
            reason=getattr(message, "reason", None) or "",
        )
        s = self.settings
        outcome = await self.store.signal(
            signal,
            capacity=s.rtc_window_size,
            ttl=s.rtc_call_ttl_seconds,
            now=self.clock(),
            ring=s.rtc_ring_timeout_seconds,
        )
        m.SIGNALS.labels(kind, outcome.status).inc()
        status = outcome.status
        if status == "accepted":
            await self._accepted(link, message, outcome)
        elif status == "overflow":
            m.OVERFLOWS.labels("send").inc()
            link.conn.send(
                _error(
                    "window_overflow",
                    "the other member has too many messages not yet received; "
                    "this one is resent later",
                    link.call,
                    message.seq,
                )
            )
        elif status in ("busy", "unknown", "forbidden", "refused"):
            link.conn.send(_error(f"call_{status}", _REFUSALS[status], link.call, message.seq))
            if status in ("busy", "unknown", "forbidden"):
                self.links.pop((link.conn.id, link.call), None)
        return outcome

    async def _accepted(
        self, link: CallLink, message: SignalMessage, outcome: SignalOutcome
    ) -> None:
        if outcome.created:
            m.CALLS_STARTED.inc()
        if isinstance(message, CallStats):
            self._observe(link, message)
        kind = message.type
        if kind == "rtc:description" and getattr(message, "ice_restart", False):
            m.ICE_RESTARTS.inc()
        elif kind == "device:audio-output":
            m.AUDIO_OUTPUT.labels(getattr(message, "device_type", "default")).inc()
        elif kind == "call:control":
            m.CONTROLS.labels(getattr(message, "action", "")).inc()
        elif kind == "call:quality":
            m.QUALITY_CHANGES.labels(
                getattr(message, "mode", ""), getattr(message, "reason", None) or "none"
            ).inc()
        if outcome.ended:
            await self._count_end(link.room, link.call, kind)
        if outcome.seq:
            await self._notify(link.room, link.call, link.peer)

    def _observe(self, link: CallLink, stats: CallStats) -> None:
        if stats.rtt_ms is not None:
            m.RTT_SECONDS.observe(stats.rtt_ms / 1000)
            self._rtts.append(stats.rtt_ms)
        if stats.jitter_ms is not None:
            m.JITTER_SECONDS.observe(stats.jitter_ms / 1000)
        if stats.packet_loss is not None:
            m.PACKET_LOSS.observe(stats.packet_loss)
        if stats.setup_ms is not None:
            m.SETUP_SECONDS.observe(stats.setup_ms / 1000)
        if stats.region is not None:
            self._regions[stats.region] = self.clock()
            if link.region != stats.region:
                if link.region is not None:
                    m.TURN_FAILOVERS.inc()
                    self._failovers += 1
                m.TURN_SELECTED_REGION.labels(stats.region).inc()
                link.region = stats.region

    async def _count_end(self, room: str, call: str, kind: str) -> None:
        if kind == "call:reject":
            m.CALLS_ENDED.labels("rejected").inc()
            return
        info = await self.store.info(room, call)
        m.CALLS_ENDED.labels("connected" if info is not None and info.connected else "failed").inc()

    async def _client_ack(self, conn: Connection, ack: RtcAck) -> None:
        link = await self._link_for(conn, ack.call, None)
        if ack.ack > link.sent or any(s > link.sent for s in ack.sack):
            raise ProtocolError(
                "invalid_ack",
                f"acknowledges a seq never sent on this connection (last sent {link.sent})",
                {"call": ack.call, "sent": link.sent},
            )
        link.send.ack(ack.ack, ack.sack)
        await self.store.ack(link.room, link.call, link.person, ack.ack, list(ack.sack))

    # --- resume ---------------------------------------------------------------------------
    async def resume(self, conn: Connection, call: str, position: CallPosition) -> None:
        """A reconnecting client names a call and the last ``seq`` it delivered: the first
        frame about the call is ``rtc:resumed``, then exactly what it has not delivered."""
        m.RESUMES.inc()
        person = conn.person.id
        info = await self.store.info(position.room, call)
        peer = None if info is None else info.peer_of(person)
        if info is None or peer is None:
            conn.send(
                frame(
                    "rtc:resumed",
                    call=call,
                    delivered=position.delivered,
                    received=0,
                    state="unknown",
                )
            )
            return
        link = self._new_link(conn, position.room, call, peer)
        delivered = min(position.delivered, info.sent.get(person, 0))
        link.recv.reset(info.received.get(person, 0))
        link.sent = delivered
        conn.send(
            frame(
                "rtc:resumed",
                call=call,
                delivered=delivered,
                received=info.received.get(person, 0),
                state=info.state,
            )
        )
        if delivered > info.acked.get(person, 0):
            await self.store.ack(position.room, call, person, delivered, [])
        await self._deliver(link)

    # --- to the client --------------------------------------------------------------------
    async def _notify(self, room: str, call: str, person: str) -> None:
        await self._pull(room, call, person)
        notice = orjson.dumps({"r": room, "c": call, "to": person, "src": self._source})
        try:
            await self.backends.pubsub.publish(RTC_CHANNEL, notice)
        except StateBackendError as exc:
            # The member's process reads its outbox again when its listener is back.
            log.warning("call notice not published: %s", exc)

    async def _pull(self, room: str, call: str, person: str) -> None:
        for conn in list(self.desk.local.get(person, ())):
            link = self.links.get((conn.id, call))
            if link is None:
                info = await self.store.info(room, call)
                peer = None if info is None else info.peer_of(person)
                if info is None or peer is None:
                    continue
                link = self.links.get((conn.id, call)) or self._new_link(conn, room, call, peer)
                link.recv.reset(max(link.recv.delivered, info.received.get(person, 0)))
                link.sent = max(link.sent, info.acked.get(person, 0))
            await self._deliver(link)

    async def _deliver(self, link: CallLink) -> None:
        async with link.lock:
            entries = await self.store.pending(link.room, link.call, link.person, link.sent)
            if not entries:
                return
            for seq, payload in entries:
                link.conn.send(downlink_frame(seq, payload))
            link.sent = max(link.sent, entries[-1][0])  # the outbox reads in seq order
            try:
                link.send.push_many(entries, self._now_ms())
            except WindowOverflow:
                # The server's own notices may pass the window; a resume sends them. Each
                # frame the window could not hold counts (the batch stopped at the first).
                limit = link.send.acked + link.send.capacity
                m.OVERFLOWS.labels("send").inc(sum(1 for seq, _ in entries if seq > limit))

    async def _listen(self) -> None:
        delay = 0.05
        while True:
            try:
                async with self.backends.pubsub.subscribe(RTC_CHANNEL) as sub:
                    self.listening.set()
                    delay = 0.05
                    for link in list(self.links.values()):
                        await self._deliver(link)
                    async for _channel, raw in sub:
                        try:
                            notice = orjson.loads(raw)
                            if notice.get("src") != self._source:
                                await self._pull(notice["r"], notice["c"], notice["to"])
                        except StateBackendError as exc:
                            log.warning("call notice not handled: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                log.warning("call notice listener lost (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _timer(self) -> None:
        tick = max(0.01, min(0.25, self.settings.rtc_retransmit_ms / 4000))
        next_sweep = next_active = 0.0
        while True:
            await asyncio.sleep(tick)
            self.retransmit_due()
            now = self.monotonic()
            try:
                if now >= next_sweep:
                    next_sweep = now + SWEEP_SECONDS
                    await self.sweep()
                if now >= next_active:
                    next_active = now + ACTIVE_REFRESH_SECONDS
                    await self.refresh_active()
            except StateBackendError as exc:
                if not outage_logged(exc, "call sweep"):
                    log.warning("call sweep deferred: %s", exc)

    def retransmit_due(self) -> int:
        """Send again what was not acknowledged in time; how many frames."""
        now = self._now_ms()
        count = 0
        for link in list(self.links.values()):
            deadline = link.send.next_deadline()
            if deadline is None or deadline > now:
                continue
            for seq, payload in link.send.due(now):
                link.conn.send(downlink_frame(seq, cast(bytes, payload)))
                count += 1
        if count:
            m.RETRANSMITS.inc(count)
        return count

    # --- the server's own ends ------------------------------------------------------------
    async def end_call(self, room: str, call: str, reason: str, *, only_if: Any = None) -> bool:
        notice = orjson.dumps({"type": "call:end", "call": call, "from": SERVER, "reason": reason})
        seqs = await self.store.end(
            room,
            call,
            reason=reason,
            payload=notice,
            now=self.clock(),
            ttl=self.settings.rtc_call_ttl_seconds,
            only_if=only_if,
        )
        if seqs is None:
            return False
        if reason == "missed":
            m.CALLS_ENDED.labels("missed").inc()
        else:
            await self._count_end(room, call, "call:end")
        for person in seqs:
            await self._notify(room, call, person)
        return True

    async def sweep(self) -> None:
        """End calls nobody answered in time (any process may; the store ends each once)."""
        for room, call in await self.store.ringing_due(self.clock()):
            if not await self.end_call(room, call, "missed", only_if="ringing"):
                info = await self.store.info(room, call)
                if info is None or info.state == "ended":
                    await self.store.forget(room, call)

    async def refresh_active(self) -> int:
        self._active = await self.store.active(self.clock(), self.settings.rtc_call_ttl_seconds)
        m.CALLS_ACTIVE.set(self._active)
        return self._active

    def _on_room_closed(self, room: str) -> None:
        async def end() -> None:
            try:
                call = await self.store.current(room)
                if call is not None:
                    await self.end_call(room, call, "room_closed")
            except StateBackendError as exc:
                log.warning("call of closed room %s not ended: %s", room, exc)

        task = asyncio.get_running_loop().create_task(end())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def readiness(self) -> dict[str, Any]:
        """``/ready`` details: active calls, mean RTT, failovers and the TURN regions in use."""
        now = self.clock()
        with contextlib.suppress(StateBackendError):
            await self.refresh_active()
        return {
            "active_calls": self._active,
            "mean_rtt_ms": round(sum(self._rtts) / len(self._rtts), 1) if self._rtts else None,
            "turn_failovers": self._failovers,
            "turn_regions": sorted(
                r for r, seen in self._regions.items() if now - seen < REGION_SEEN_SECONDS
            ),
        }


_REFUSALS = {
    "busy": "the room already has a call",
    "unknown": "no such call (it may have ended long ago)",
    "forbidden": "you are not a member of this call",
    "refused": "not allowed in the call's current state",
}


def _error(code: str, message: str, call: str, seq: int) -> bytes:
    return frame("error", code=code, message=message, details={"call": call, "seq": seq})
