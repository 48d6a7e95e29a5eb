"""Plain-Python signaling windows: the same behaviour as ``native/_sigwindow.pyx``, written plainly.

Times are integer milliseconds, sequences ints >= 1. See the kernel's docstring for the rules;
this file states them in the most direct form (a dict of held messages, sorted when order
matters) so the two can be compared on generated operation sequences. Argument validation is
the public wrapper's business and is not repeated here.

The batch operations (``push_many``, ``receive_many``) are what a Python programmer would write
for a batch: one loop over the pairs doing the single operation's work inline, so a batch pays
one call, as the kernel's does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from native.sigwindow import ACCEPTED, BUFFERED, DUPLICATE, WindowOverflow


@dataclass
class Held:
    payload: object
    deadline: int
    attempts: int = 0


class SendWindowReference:
    def __init__(self, capacity: int, rto_ms: int, rto_max_ms: int) -> None:
        self.capacity = capacity
        self.rto_ms = rto_ms
        self.rto_max_ms = rto_max_ms
        self.acked = 0
        self.held: dict[int, Held] = {}

    def __len__(self) -> int:
        return len(self.held)

    def push(self, seq: int, payload: object, now_ms: int) -> bool:
        if seq <= self.acked or seq in self.held:
            return False
        if seq >= self.acked + 1 + self.capacity:
            raise WindowOverflow(f"seq {seq} is beyond the send window")
        self.held[seq] = Held(payload, now_ms + self.rto_ms)
        return True

    def push_many(self, frames: Sequence[tuple[int, object]], now_ms: int) -> int:
        deadline = now_ms + self.rto_ms
        pushed = 0
        for seq, payload in frames:
            if seq <= self.acked or seq in self.held:
                continue
            if seq >= self.acked + 1 + self.capacity:
                raise WindowOverflow(f"seq {seq} is beyond the send window")
            self.held[seq] = Held(payload, deadline)
            pushed += 1
        return pushed

    def ack(self, cumulative: int, sacks: Sequence[int] = ()) -> int:
        acknowledged = [seq for seq in self.held if seq <= cumulative or seq in sacks]
        for seq in acknowledged:
            del self.held[seq]
        self.acked = max(self.acked, cumulative)
        return len(acknowledged)

    def due(self, now_ms: int, limit: int = 64) -> list[tuple[int, object]]:
        out: list[tuple[int, object]] = []
        for seq in sorted(self.held):
            message = self.held[seq]
            if len(out) < limit and message.deadline <= now_ms:
                message.attempts += 1
                backoff = min(self.rto_ms * 2**message.attempts, self.rto_max_ms)
                message.deadline = now_ms + backoff
                out.append((seq, message.payload))
        return out

    def next_deadline(self) -> int | None:
        if not self.held:
            return None
        return min(message.deadline for message in self.held.values())

    def pending(self) -> list[tuple[int, object]]:
        return [(seq, self.held[seq].payload) for seq in sorted(self.held)]

    def rearm(self, now_ms: int) -> None:
        for message in self.held.values():
            message.attempts = 0
            message.deadline = now_ms + self.rto_ms

    def attempts(self, seq: int) -> int:
        return self.held[seq].attempts


class ReceiveWindowReference:
    def __init__(self, capacity: int, delivered: int = 0) -> None:
        self.capacity = capacity
        self.delivered = delivered
        self.buffered: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.buffered)

    def receive(self, seq: int, payload: object) -> tuple[int, Sequence[tuple[int, object]]]:
        if seq <= self.delivered:
            return (DUPLICATE, ())
        if seq > self.delivered + self.capacity:
            raise WindowOverflow(f"seq {seq} is beyond the receive window")
        if seq in self.buffered:
            return (DUPLICATE, ())
        self.buffered[seq] = payload
        if seq != self.delivered + 1:
            return (BUFFERED, ())
        deliverable = []
        while self.delivered + 1 in self.buffered:
            self.delivered += 1
            deliverable.append((self.delivered, self.buffered.pop(self.delivered)))
        return (ACCEPTED, deliverable)

    def receive_many(self, frames: Sequence[tuple[int, object]]) -> list[object]:
        delivered: list[object] = []
        for seq, payload in frames:
            if seq <= self.delivered or seq in self.buffered:
                continue
            if seq > self.delivered + self.capacity:
                overflow = WindowOverflow(f"seq {seq} is beyond the receive window")
                overflow.delivered = delivered
                raise overflow
            if seq != self.delivered + 1:
                self.buffered[seq] = payload
                continue
            self.delivered = seq
            delivered.append(payload)
            while self.delivered + 1 in self.buffered:
                self.delivered += 1
                delivered.append(self.buffered.pop(self.delivered))
        return delivered

    def sacks(self, limit: int = 32) -> list[int]:
        return sorted(self.buffered)[:limit]

    def reset(self, delivered: int) -> None:
        self.delivered = delivered
        self.buffered = {}
