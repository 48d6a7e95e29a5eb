"""The state of calls and of their signaling, shared by every process: what each peer sent and
what it still has to be given.

A call lives in one support room and has two members, the caller and the callee. Each member
numbers the messages it sends in the call (its *uplink* sequence: 1, 2, 3, ...); the store takes
them strictly in order, once each: a number already taken is a duplicate, a later one a gap (the
sender's retransmission fills it). A message taken for the other member is given that member's
next *downlink* sequence and kept in its outbox until the member acknowledges it, so a member
who reconnects, to any process, receives exactly what it has not acknowledged.

Every step is atomic (a Lua script on Redis; in-process, one step with no await between reading
and writing). Two implementations keep the same observable rules, and one contract suite runs
against both: ``MemorySignalStore`` and ``RedisSignalStore``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

CallState = Literal["ringing", "active", "ended"]

#: What ``signal`` did with a message:
#: ``accepted``: taken (relayed when ``relayed``), ``duplicate``: taken before,
#: ``gap``: an earlier message of the sender is missing, ``overflow``: the recipient's outbox is
#: full (not taken: the sender retransmits later), ``busy``: the room has another call,
#: ``unknown``: no such call, ``forbidden``: the sender is not a member,
#: ``refused``: not allowed in the call's state (taken, so later numbers go on, but not
#: relayed), ``ended``: the call has ended (taken, not relayed).
SignalStatus = Literal[
    "accepted", "duplicate", "gap", "overflow", "busy", "unknown", "forbidden", "refused", "ended"
]

#: Messages that change the call's state, and who may send them (the store enforces it).
STATE_CHANGES = frozenset({"call:start", "call:accept", "call:reject", "call:end"})


@dataclass(frozen=True, slots=True)
class CallInfo:
    room: str
    call: str
    caller: str
    callee: str
    media: str
    state: CallState
    started: float
    accepted: float | None
    ended: float | None
    reason: str | None
    #: The client reported the media as connected (``call:stats`` with ``setup_ms``).
    connected: bool
    #: Per member: the last uplink sequence taken from it.
    received: dict[str, int] = field(default_factory=dict)
    #: Per member: the last downlink sequence handed out to it.
    sent: dict[str, int] = field(default_factory=dict)
    #: Per member: the cumulative acknowledgement it gave.
    acked: dict[str, int] = field(default_factory=dict)

    def peer_of(self, person: str) -> str | None:
        if person == self.caller:
            return self.callee
        if person == self.callee:
            return self.caller
        return None


@dataclass(frozen=True, slots=True)
class SignalOutcome:
    status: SignalStatus
    #: The sender's last uplink sequence taken now (what to acknowledge to it).
    received: int
    #: The recipient's downlink sequence of the relayed message; 0 when not relayed.
    seq: int = 0
    #: The call's state after the message ("" when there is no call).
    state: str = ""
    #: This message started the call (a new call, not a resent ``call:start``).
    created: bool = False
    #: This message ended the call (the one transition to ``ended``).
    ended: bool = False


@dataclass(frozen=True, slots=True)
class Signal:
    """One message from ``sender`` in ``call``: ``payload`` is the JSON object to relay, without
    its downlink ``seq`` (spliced in when sent)."""

    room: str
    call: str
    sender: str
    recipient: str
    kind: str
    seq: int
    payload: bytes
    #: Relay it to the recipient; False: taken (numbered, acknowledged) but kept here.
    relay: bool = True
    #: For ``call:start``: the media asked for.
    media: str = "audio"
    #: Mark the call's media as connected (the first ``call:stats`` with a setup time).
    connected: bool = False
    #: Why the call ends, for ``call:end`` and ``call:reject``.
    reason: str = ""


class SignalStore(Protocol):
    kind: str  # "memory" or "redis"

    async def signal(
        self, message: Signal, *, capacity: int, ttl: float, now: float, ring: float
    ) -> SignalOutcome:
        """Take one message (see the module's rules). ``capacity``: most unacknowledged messages
        in the recipient's outbox; ``ttl``: how long the call's state lives (refreshed);
        ``ring``: seconds a new call may ring before it ends as missed."""
        ...

    async def ack(
        self, room: str, call: str, person: str, cumulative: int, sacks: list[int]
    ) -> int:
        """``person`` has every message up to ``cumulative`` and those in ``sacks``: they leave
        its outbox. Returns its cumulative acknowledgement now (never above what was sent)."""
        ...

    async def pending(
        self, room: str, call: str, person: str, after: int
    ) -> list[tuple[int, bytes]]:
        """The messages in ``person``'s outbox with a sequence above ``after``, in order."""
        ...

    async def info(self, room: str, call: str) -> CallInfo | None: ...

    async def current(self, room: str) -> str | None:
        """The room's call that has not ended, if any."""
        ...

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
        """End the call from the server's side (the room closed, nobody answered): ``payload``
        (a ``call:end`` without ``seq``) goes to both members' outboxes whatever their windows
        hold. None when the call is unknown, already ended, or not in state ``only_if``;
        otherwise each member's downlink sequence of the notice."""
        ...

    async def ringing_due(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        """``(room, call)`` of calls whose ring time ended (they may have been answered since:
        ``end(only_if="ringing")`` decides)."""
        ...

    async def forget(self, room: str, call: str) -> None:
        """Drop the call from the indexes (it ended, or its state expired)."""
        ...

    async def active(self, now: float, ttl: float) -> int:
        """How many calls have not ended (ones older than ``ttl`` are forgotten on the way)."""
        ...


def index_member(room: str, call: str) -> str:
    return f"{room}|{call}"


def split_member(member: str) -> tuple[str, str]:
    room, _, call = member.rpartition("|")
    return room, call
