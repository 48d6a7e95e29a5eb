"""The call signaling store in-process (embedded mode).

A call is one object in the backends' keyspace under the key its Redis hash has, with the
call's lifetime as TTL (refreshed by every message), so the keyspace forgets it as Redis would.
No method awaits between reading and writing, so on one event loop each call is one atomic step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.backends.keys import RTC_ACTIVE, RTC_RINGING, RTC_TAG
from service.backends.memory import MemoryKeyspace
from service.rtc.signals import (
    CallInfo,
    CallState,
    Signal,
    SignalOutcome,
    index_member,
    split_member,
)


@dataclass
class _Call:
    room: str
    call: str
    caller: str
    callee: str
    media: str
    state: CallState
    started: float
    accepted: float | None = None
    ended: float | None = None
    reason: str | None = None
    connected: bool = False
    received: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    acked: dict[str, int] = field(default_factory=dict)
    outboxes: dict[str, dict[int, bytes]] = field(default_factory=dict)

    def push(self, person: str, payload: bytes) -> int:
        seq = self.sent.get(person, 0) + 1
        self.sent[person] = seq
        self.outboxes.setdefault(person, {})[seq] = payload
        return seq

    def info(self) -> CallInfo:
        return CallInfo(
            room=self.room,
            call=self.call,
            caller=self.caller,
            callee=self.callee,
            media=self.media,
            state=self.state,
            started=self.started,
            accepted=self.accepted,
            ended=self.ended,
            reason=self.reason,
            connected=self.connected,
            received=dict(self.received),
            sent=dict(self.sent),
            acked=dict(self.acked),
        )


def call_key(room: str, call: str) -> str:
    return f"{{{RTC_TAG}:{room}}}:call:{call}"


def current_key(room: str) -> str:
    return f"{{{RTC_TAG}:{room}}}:current"


class MemorySignalStore:
    kind = "memory"

    def __init__(self, space: MemoryKeyspace) -> None:
        self._space = space

    def _call(self, room: str, call: str) -> _Call | None:
        return self._space.get_value(call_key(room, call), _Call)

    def _index(self, name: str) -> dict[str, float]:
        found = self._space.get_value(name, dict)
        if found is None:
            found = {}
            self._space.put(name, found, None)
        return found

    async def signal(
        self, message: Signal, *, capacity: int, ttl: float, now: float, ring: float
    ) -> SignalOutcome:
        m = message
        c = self._call(m.room, m.call)
        created = False
        if c is None:
            if m.kind != "call:start":
                return SignalOutcome("unknown", 0)
            current = self._space.get_value(current_key(m.room), str)
            if current is not None and current != m.call:
                return SignalOutcome("busy", 0)
            c = _Call(m.room, m.call, m.sender, m.recipient, m.media, "ringing", now)
            self._space.put(call_key(m.room, m.call), c, ttl)
            self._space.put(current_key(m.room), m.call, ttl)
            member = index_member(m.room, m.call)
            self._index(RTC_RINGING)[member] = now + ring
            self._index(RTC_ACTIVE)[member] = now
            created = True
        peer = c.info().peer_of(m.sender)
        if peer is None or peer != m.recipient:
            return SignalOutcome("forbidden", 0, state=c.state)
        last = c.received.get(m.sender, 0)
        if m.seq <= last:
            return SignalOutcome("duplicate", last, state=c.state)
        if m.seq > last + 1:
            return SignalOutcome("gap", last, state=c.state)
        if c.state == "ended":
            c.received[m.sender] = m.seq
            return SignalOutcome("ended", m.seq, state=c.state)
        allowed, new_state = _transition(c.state, m.kind, m.sender == c.callee, created)
        if not allowed:
            c.received[m.sender] = m.seq
            return SignalOutcome("refused", m.seq, state=c.state)
        relay = m.relay
        if relay and c.sent.get(m.recipient, 0) - c.acked.get(m.recipient, 0) >= capacity:
            return SignalOutcome("overflow", last, state=c.state)
        c.received[m.sender] = m.seq
        seq = c.push(m.recipient, m.payload) if relay else 0
        ended = False
        if m.connected:
            c.connected = True
        if new_state != c.state:
            member = index_member(c.room, c.call)
            if new_state == "active":
                c.accepted = now
                self._index(RTC_RINGING).pop(member, None)
            elif new_state == "ended":
                ended = True
                self._close(c, now, m.reason or m.kind.partition(":")[2])
            c.state = new_state
        self._space.set_ttl(call_key(c.room, c.call), ttl)
        return SignalOutcome("accepted", m.seq, seq, c.state, created, ended)

    def _close(self, c: _Call, now: float, reason: str) -> None:
        c.ended = now
        c.reason = reason
        if self._space.get_value(current_key(c.room), str) == c.call:
            self._space.remove(current_key(c.room))
        member = index_member(c.room, c.call)
        self._index(RTC_RINGING).pop(member, None)
        self._index(RTC_ACTIVE).pop(member, None)

    async def ack(
        self, room: str, call: str, person: str, cumulative: int, sacks: list[int]
    ) -> int:
        c = self._call(room, call)
        if c is None:
            return 0
        sent = c.sent.get(person, 0)
        acked = max(c.acked.get(person, 0), min(cumulative, sent))
        c.acked[person] = acked
        box = c.outboxes.get(person, {})
        for seq in [s for s in box if s <= acked or s in sacks]:
            del box[seq]
        return acked

    async def pending(
        self, room: str, call: str, person: str, after: int
    ) -> list[tuple[int, bytes]]:
        c = self._call(room, call)
        if c is None:
            return []
        box = c.outboxes.get(person, {})
        return sorted((seq, payload) for seq, payload in box.items() if seq > after)

    async def info(self, room: str, call: str) -> CallInfo | None:
        c = self._call(room, call)
        return None if c is None else c.info()

    async def current(self, room: str) -> str | None:
        return self._space.get_value(current_key(room), str)

    async def end(
        self,
        room: str,
        call: str,
        *,
        reason: str,
        payload: bytes,
        now: float,
        ttl: float,
        only_if: CallState | None = None,
    ) -> dict[str, int] | None:
        c = self._call(room, call)
        if c is None or c.state == "ended" or (only_if is not None and c.state != only_if):
            return None
        seqs = {c.caller: c.push(c.caller, payload), c.callee: c.push(c.callee, payload)}
        self._close(c, now, reason)
        c.state = "ended"
        self._space.set_ttl(call_key(room, call), ttl)
        return seqs

    async def ringing_due(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        due = sorted((at, member) for member, at in self._index(RTC_RINGING).items() if at <= now)
        return [split_member(member) for _, member in due[:limit]]

    async def forget(self, room: str, call: str) -> None:
        member = index_member(room, call)
        self._index(RTC_RINGING).pop(member, None)
        self._index(RTC_ACTIVE).pop(member, None)

    async def active(self, now: float, ttl: float) -> int:
        index = self._index(RTC_ACTIVE)
        for member in [m for m, at in index.items() if at < now - ttl]:
            del index[member]
        return len(index)


def _transition(
    state: CallState, kind: str, from_callee: bool, created: bool
) -> tuple[bool, CallState]:
    """Whether ``kind`` may be sent in ``state`` (by the callee or the caller), and the state
    after it. The one table both stores follow (the Lua script mirrors it)."""
    if kind == "call:start":
        return created, state
    if kind == "call:accept":
        return (from_callee and state == "ringing"), "active"
    if kind == "call:reject":
        return (from_callee and state == "ringing"), "ended"
    if kind == "call:end":
        return True, "ended"
    return True, state
