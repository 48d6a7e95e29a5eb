"""Plain-Python oracle of the live-support waiting queue (``service/support/waitqueue.py``).

The same contract, written as directly as possible: the queue is a list in join order, the
free admins a dict, every lookup a scan. Slow on purpose, so that it is obviously right; the
backends are compared with it on generated sequences of operations.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Entry:
    customer: str
    joined_at: float
    disconnected_until: float | None = None


class SupportQueueReference:
    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha
        self.queue: list[Entry] = []  # waiting, first in line first
        self.free: dict[str, float] = {}  # admin -> free since
        self.serving: dict[str, tuple[str, float]] = {}  # admin -> (customer, assigned at)
        self.ewma: float | None = None
        self.spread: float | None = None
        self.count = 0
        self.version = 0

    # --- lookups ---------------------------------------------------------------------------
    def _entry(self, customer: str) -> Entry | None:
        for entry in self.queue:
            if entry.customer == customer:
                return entry
        return None

    def position(self, customer: str) -> int | None:
        for index, entry in enumerate(self.queue):
            if entry.customer == customer:
                return index + 1
        return None

    def waiting(self) -> list[tuple[str, float, float | None]]:
        return [(e.customer, e.joined_at, e.disconnected_until) for e in self.queue]

    def assignment_of_admin(self, admin: str) -> str | None:
        held = self.serving.get(admin)
        return None if held is None else held[0]

    def assignment_of_customer(self, customer: str) -> str | None:
        for admin, (served, _) in self.serving.items():
            if served == customer:
                return admin
        return None

    def free_admins(self) -> list[str]:
        return sorted(self.free, key=lambda admin: (self.free[admin], admin))

    # --- operations ------------------------------------------------------------------------
    def join(self, customer: str, capacity: int, now: float) -> tuple[str, object]:
        admin = self.assignment_of_customer(customer)
        if admin is not None:
            return ("assigned", admin)
        position = self.position(customer)
        if position is not None:
            return ("waiting", position)
        if not self.queue and self.free:
            longest = self.free_admins()[0]
            del self.free[longest]
            self.serving[longest] = (customer, now)
            self.version += 1
            return ("assigned", longest)
        if len(self.queue) >= capacity:
            return ("full", len(self.queue))
        self.queue.append(Entry(customer, now))
        self.version += 1
        return ("waiting", len(self.queue))

    def leave(self, customer: str) -> bool:
        entry = self._entry(customer)
        if entry is None:
            return False
        self.queue.remove(entry)
        self.version += 1
        return True

    def admin_ready(self, admin: str, now: float) -> str | None:
        if admin in self.serving:
            return None
        if self.queue:
            head = self.queue.pop(0)
            self.free.pop(admin, None)
            self.serving[admin] = (head.customer, now)
            self.version += 1
            return head.customer
        if admin not in self.free:
            self.free[admin] = now
        return None

    def admin_away(self, admin: str) -> None:
        self.free.pop(admin, None)

    def finish(self, admin: str, now: float) -> str | None:
        if admin not in self.serving:
            return None
        customer, assigned_at = self.serving.pop(admin)
        sample = max(now - assigned_at, 0.0)
        if self.ewma is None or self.spread is None:
            self.ewma, self.spread = sample, sample / 2
        else:
            self.spread = self.spread + self.alpha * (abs(sample - self.ewma) - self.spread)
            self.ewma = self.ewma + self.alpha * (sample - self.ewma)
        self.count += 1
        self.version += 1
        return customer

    def mark_disconnected(self, customer: str, until: float) -> bool:
        entry = self._entry(customer)
        if entry is None:
            return False
        if entry.disconnected_until != until:
            entry.disconnected_until = until
            self.version += 1
        return True

    def mark_connected(self, customer: str) -> bool:
        entry = self._entry(customer)
        if entry is None:
            return False
        if entry.disconnected_until is not None:
            entry.disconnected_until = None
            self.version += 1
        return True

    def _remove_where(self, doomed: list[Entry]) -> list[str]:
        for entry in doomed:
            self.queue.remove(entry)
        if doomed:
            self.version += 1
        return [entry.customer for entry in doomed]

    def expire_disconnected(self, now: float) -> list[str]:
        return self._remove_where(
            [
                e
                for e in self.queue
                if e.disconnected_until is not None and e.disconnected_until <= now
            ]
        )

    def expire_waited(self, now: float, max_wait: float) -> list[str]:
        cutoff = now - max_wait
        return self._remove_where([e for e in self.queue if e.joined_at <= cutoff])
