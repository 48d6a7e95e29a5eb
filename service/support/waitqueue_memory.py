"""The waiting queue in-process (embedded mode).

Lock-free: no method awaits between reading and writing the state, so on one event loop every
call is one atomic step, the in-process counterpart of the Redis backend's Lua scripts.

Positions cost O(log n): each waiting customer holds a join sequence number, and a Fenwick tree
over the sequence numbers counts those still waiting up to a number. When the numbers run past
the tree, they are handed out again densely (1..n in queue order) and the tree rebuilt, which
amortizes to O(1) per join. Maximum-wait expiry reads a heap by joined-at time whose entries of
customers gone meanwhile are dropped when they surface.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict

from core.support.eta import DEFAULT_ALPHA, HandleStats, check_alpha, record_handle
from service.support.waitqueue import (
    Assigned,
    Assignment,
    Full,
    JoinResult,
    Waiting,
    WaitingCustomer,
)

_MIN_SLOTS = 1024


class _Counts:
    """Fenwick tree: how many of the slots 1..i are taken."""

    def __init__(self, slots: int, taken: int = 0) -> None:
        # Slots 1..taken start taken; built bottom-up in O(slots).
        tree = [1 if i <= taken else 0 for i in range(slots + 1)]
        tree[0] = 0
        for i in range(1, slots + 1):
            parent = i + (i & -i)
            if parent <= slots:
                tree[parent] += tree[i]
        self.tree = tree

    @property
    def slots(self) -> int:
        return len(self.tree) - 1

    def add(self, i: int, delta: int) -> None:
        tree = self.tree
        size = len(tree)
        while i < size:
            tree[i] += delta
            i += i & -i

    def prefix(self, i: int) -> int:
        tree = self.tree
        total = 0
        while i > 0:
            total += tree[i]
            i -= i & -i
        return total


class MemoryWaitQueue:
    kind = "memory"

    def __init__(self, *, alpha: float = DEFAULT_ALPHA) -> None:
        self.alpha = check_alpha(alpha)
        self._seq: OrderedDict[str, int] = OrderedDict()  # waiting, in queue order
        self._joined: dict[str, float] = {}
        self._gone: dict[str, float] = {}  # disconnected waiting customer -> grace end
        self._counts = _Counts(_MIN_SLOTS)
        self._next_seq = 1
        self._by_joined: list[tuple[float, int, str]] = []  # heap; stale entries skipped
        self._free: dict[str, float] = {}  # admin -> free since
        self._serving: dict[str, str] = {}  # admin -> customer
        self._served_by: dict[str, str] = {}  # customer -> admin
        self._assigned_at: dict[str, float] = {}  # admin -> time it took its customer
        self._stats: HandleStats | None = None
        self._version = 0

    # --- internals (synchronous: each public method stays one atomic step) ----------------
    def _renumber(self) -> None:
        slots = max(_MIN_SLOTS, 2 * (len(self._seq) + 1))
        for number, customer in enumerate(self._seq, start=1):
            self._seq[customer] = number
        self._next_seq = len(self._seq) + 1
        self._counts = _Counts(slots, len(self._seq))
        self._by_joined = [(self._joined[c], n, c) for c, n in self._seq.items()]
        heapq.heapify(self._by_joined)

    def _append(self, customer: str, now: float) -> None:
        if self._next_seq > self._counts.slots:
            self._renumber()
        number = self._next_seq
        self._next_seq += 1
        self._seq[customer] = number
        self._joined[customer] = now
        self._counts.add(number, 1)
        heapq.heappush(self._by_joined, (now, number, customer))

    def _remove(self, customer: str) -> None:
        number = self._seq.pop(customer)
        self._counts.add(number, -1)
        del self._joined[customer]
        self._gone.pop(customer, None)

    def _assign(self, admin: str, customer: str, now: float) -> None:
        self._free.pop(admin, None)
        self._serving[admin] = customer
        self._served_by[customer] = admin
        self._assigned_at[admin] = now
        self._version += 1

    def _longest_free(self) -> str | None:
        if not self._free:
            return None
        # Ties by name, as a Redis sorted set orders equal scores.
        return min(self._free.items(), key=lambda item: (item[1], item[0]))[0]

    def _remove_in_queue_order(self, customers: list[str]) -> list[str]:
        customers.sort(key=self._seq.__getitem__)
        for customer in customers:
            self._remove(customer)
        if customers:
            self._version += 1
        return customers

    # --- customers -------------------------------------------------------------------------
    async def join(self, customer: str, *, capacity: int, now: float) -> JoinResult:
        admin = self._served_by.get(customer)
        if admin is not None:
            return Assigned(admin)
        number = self._seq.get(customer)
        if number is not None:
            return Waiting(self._counts.prefix(number))
        if not self._seq:
            free = self._longest_free()
            if free is not None:
                self._assign(free, customer, now)
                return Assigned(free)
        if len(self._seq) >= capacity:
            return Full(len(self._seq))
        self._append(customer, now)
        self._version += 1
        return Waiting(len(self._seq))

    async def leave(self, customer: str) -> bool:
        if customer not in self._seq:
            return False
        self._remove(customer)
        self._version += 1
        return True

    async def position(self, customer: str) -> int | None:
        number = self._seq.get(customer)
        return None if number is None else self._counts.prefix(number)

    async def waiting(self) -> list[WaitingCustomer]:
        return [WaitingCustomer(c, self._joined[c], self._gone.get(c)) for c in self._seq]

    async def mark_disconnected(self, customer: str, *, until: float) -> bool:
        if customer not in self._seq:
            return False
        if self._gone.get(customer) != until:
            self._gone[customer] = until
            self._version += 1
        return True

    async def mark_connected(self, customer: str) -> bool:
        if customer not in self._seq:
            return False
        if self._gone.pop(customer, None) is not None:
            self._version += 1
        return True

    async def expire_disconnected(self, *, now: float) -> list[str]:
        return self._remove_in_queue_order([c for c, until in self._gone.items() if until <= now])

    async def expire_waited(self, *, now: float, max_wait: float) -> list[str]:
        cutoff = now - max_wait
        heap = self._by_joined
        due: list[str] = []
        while heap and heap[0][0] <= cutoff:
            _, number, customer = heapq.heappop(heap)
            if self._seq.get(customer) == number:
                due.append(customer)
        return self._remove_in_queue_order(due)

    # --- admins ----------------------------------------------------------------------------
    async def admin_ready(self, admin: str, *, now: float) -> str | None:
        if admin in self._serving:
            return None
        if self._seq:
            customer = next(iter(self._seq))
            self._remove(customer)
            self._assign(admin, customer, now)
            return customer
        self._free.setdefault(admin, now)
        return None

    async def admin_away(self, admin: str) -> None:
        self._free.pop(admin, None)

    async def finish(self, admin: str, *, now: float) -> str | None:
        customer = self._serving.pop(admin, None)
        if customer is None:
            return None
        del self._served_by[customer]
        started = self._assigned_at.pop(admin)
        self._stats = record_handle(self._stats, now - started, alpha=self.alpha)
        self._version += 1
        return customer

    async def assignment_of_admin(self, admin: str) -> str | None:
        return self._serving.get(admin)

    async def assignment_of_customer(self, customer: str) -> str | None:
        return self._served_by.get(customer)

    async def free_admins(self) -> list[str]:
        return [a for a, _ in sorted(self._free.items(), key=lambda item: (item[1], item[0]))]

    async def assignments(self) -> list[Assignment]:
        return sorted(
            (Assignment(a, c, self._assigned_at[a]) for a, c in self._serving.items()),
            key=lambda held: (held.assigned_at, held.admin),
        )

    # --- statistics ------------------------------------------------------------------------
    async def handle_time(self) -> float | None:
        return None if self._stats is None else self._stats.ewma

    async def handle_time_spread(self) -> float | None:
        return None if self._stats is None else self._stats.spread

    async def handle_stats(self) -> HandleStats | None:
        return self._stats

    async def version(self) -> int:
        return self._version
