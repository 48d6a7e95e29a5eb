"""Public signaling windows: reliable, in-order delivery bookkeeping for one peer's signaling
stream. Validates the configuration, then hands out the compiled kernel (``native._sigwindow``).

Sequences are ints ``>= 1`` (assigned by the state backend), times are integer milliseconds
from the caller's monotonic clock, payloads are opaque objects held by reference.

``SendWindow(capacity, rto_ms, rto_max_ms)`` holds sent messages until they are acknowledged:
``push(seq, payload, now_ms) -> bool``, ``push_many([(seq, payload), ...], now_ms) -> held``,
``ack(cumulative, sacks=()) -> dropped``, ``due(now_ms, limit=64) -> [(seq, payload)]``
(retransmit now; exponential backoff capped at ``rto_max_ms``), ``next_deadline() -> int |
None``, ``pending() -> [(seq, payload)]`` and ``rearm(now_ms)`` for a resume,
``attempts(seq)``.

``ReceiveWindow(capacity, delivered=0)`` drops duplicates and delivers in order:
``receive(seq, payload) -> (ACCEPTED, [(seq, payload), ...]) | (BUFFERED | DUPLICATE, ())``,
``receive_many([(seq, payload), ...]) -> [payload, ...]`` (the delivered payloads, their
sequences following on from ``delivered`` before the call), ``sacks(limit=32) -> [seq]``,
``reset(delivered)``.

A sequence beyond the window (``seq >= acked + 1 + capacity`` when sending,
``seq > delivered + capacity`` when receiving) raises ``WindowOverflow``; a batch stops there,
keeping what the pairs before it did (``WindowOverflow.delivered`` holds what a
``receive_many`` delivered). The methods are the compiled methods themselves: they check their
arguments' types and ranges in C (a ``TypeError`` or ``ValueError`` naming the argument, or the
pair of a batch; a batch with a malformed pair changes nothing), where checking costs nothing
next to a Python frame that would double the price of a push.

A batch takes a list (or tuple) of ``(seq, payload)`` tuples and costs one call however many
pairs it holds: a relay handling a burst of frames hands them over at once.
"""

from __future__ import annotations

from native import _sigwindow
from native._sigwindow import (
    ACCEPTED,
    BUFFERED,
    DUPLICATE,
    MAX_CAPACITY,
    MAX_MS,
    MAX_RTO_MS,
    MAX_SEQ,
    WindowOverflow,
)
from native.gcra import check_range

__all__ = [
    "ACCEPTED",
    "BUFFERED",
    "DUPLICATE",
    "MAX_CAPACITY",
    "MAX_MS",
    "MAX_RTO_MS",
    "MAX_SEQ",
    "ReceiveWindow",
    "SendWindow",
    "WindowOverflow",
]


class SendWindow:
    """Sent messages held until acknowledged, retransmitted with capped exponential backoff."""

    __slots__ = (
        "_window",
        "ack",
        "attempts",
        "due",
        "next_deadline",
        "pending",
        "push",
        "push_many",
        "rearm",
    )

    def __init__(self, capacity: int, rto_ms: int, rto_max_ms: int) -> None:
        check_range("capacity", capacity, 1, MAX_CAPACITY)
        check_range("rto_ms", rto_ms, 1, MAX_RTO_MS)
        check_range("rto_max_ms", rto_max_ms, rto_ms, MAX_RTO_MS)
        window = _sigwindow.SendWindow(capacity, rto_ms, rto_max_ms)
        self._window = window
        self.push = window.push
        self.push_many = window.push_many
        self.ack = window.ack
        self.due = window.due
        self.next_deadline = window.next_deadline
        self.pending = window.pending
        self.rearm = window.rearm
        self.attempts = window.attempts

    @property
    def capacity(self) -> int:
        return self._window.capacity

    @property
    def rto_ms(self) -> int:
        return self._window.rto_ms

    @property
    def rto_max_ms(self) -> int:
        return self._window.rto_max_ms

    @property
    def acked(self) -> int:
        """The highest cumulative ack seen (0 at start); the window's base is ``acked + 1``."""
        return self._window.acked

    @property
    def kernel(self) -> _sigwindow.SendWindow:
        """The compiled window itself."""
        return self._window

    def __len__(self) -> int:
        """Messages held: sent and not yet acknowledged."""
        return len(self._window)

    def __repr__(self) -> str:
        return (
            f"SendWindow(capacity={self.capacity}, acked={self.acked}, held={len(self)}, "
            f"rto_ms={self.rto_ms}, rto_max_ms={self.rto_max_ms})"
        )


class ReceiveWindow:
    """Out-of-order messages buffered until the gap before them is filled; duplicates dropped."""

    __slots__ = ("_window", "receive", "receive_many", "reset", "sacks")

    def __init__(self, capacity: int, delivered: int = 0) -> None:
        check_range("capacity", capacity, 1, MAX_CAPACITY)
        check_range("delivered", delivered, 0, MAX_SEQ)
        window = _sigwindow.ReceiveWindow(capacity, delivered)
        self._window = window
        self.receive = window.receive
        self.receive_many = window.receive_many
        self.sacks = window.sacks
        self.reset = window.reset

    @property
    def capacity(self) -> int:
        return self._window.capacity

    @property
    def delivered(self) -> int:
        """The highest sequence delivered in order: the cumulative ack to send."""
        return self._window.delivered

    @property
    def kernel(self) -> _sigwindow.ReceiveWindow:
        """The compiled window itself."""
        return self._window

    def __len__(self) -> int:
        """Out-of-order messages buffered."""
        return len(self._window)

    def __repr__(self) -> str:
        return (
            f"ReceiveWindow(capacity={self.capacity}, delivered={self.delivered}, "
            f"buffered={len(self)})"
        )
