"""The fair waiting queue of live support: its state, and nothing else (no sockets, no texts).

N admins each serve one customer at a time; customers wait in one strict FIFO shared by every
process. Each mutating operation is one atomic step in the state backend (a Lua script on Redis,
a method body without an ``await`` in-process), so two processes can never hand one customer to
two admins, give an admin two customers, or skip anyone.

Rules every implementation keeps (``tests/reference/support_queue.py`` states them as plain
code, and the property tests hold both backends to it):

- A customer is waiting, assigned, or neither; never both. Positions are 1..n in join order.
- An admin is free (in the free set, ordered by free-since, then name), serving one customer,
  or neither (away, offline, busy elsewhere). A free admin exists only while nobody waits:
  ``join`` takes the longest-free admin when the queue is empty, ``admin_ready`` takes the head.
- A disconnected waiting customer keeps its place (``mark_disconnected``) until its grace ends
  and ``expire_disconnected`` removes it; a removal for any reason clears the mark.
- ``version`` grows by one with each call that changes the waiting list (members, order or
  disconnect marks) or the assignments; other calls leave it alone.
- ``finish`` feeds the handle time into the statistics of ``core.support.eta.record_handle``.

Times (``now``, ``until``) are unix seconds given by the caller, so tests drive them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.support.eta import HandleStats


@dataclass(frozen=True, slots=True)
class Waiting:
    position: int  # 1-based


@dataclass(frozen=True, slots=True)
class Assigned:
    admin: str


@dataclass(frozen=True, slots=True)
class Full:
    waiting: int  # how many wait now


JoinResult = Waiting | Assigned | Full


@dataclass(frozen=True, slots=True)
class WaitingCustomer:
    customer: str
    joined_at: float
    disconnected_until: float | None


@dataclass(frozen=True, slots=True)
class Assignment:
    admin: str
    customer: str
    assigned_at: float


class WaitQueue(Protocol):
    kind: str  # "memory" or "redis"

    async def join(self, customer: str, *, capacity: int, now: float) -> JoinResult:
        """Atomic. Already waiting -> Waiting(current position); already assigned ->
        Assigned(admin). Queue empty and an admin free -> the longest-free admin is taken and
        assigned -> Assigned. len(waiting) >= capacity -> Full. Otherwise appended at the tail
        -> Waiting(len)."""
        ...

    async def leave(self, customer: str) -> bool:
        """Remove from waiting; True if it was there."""
        ...

    async def position(self, customer: str) -> int | None:
        """1-based, None when not waiting."""
        ...

    async def waiting(self) -> list[WaitingCustomer]:
        """Everyone waiting, in order (one consistent snapshot)."""
        ...

    async def admin_ready(self, admin: str, *, now: float) -> str | None:
        """Atomic. Admin is available: if it already serves someone, nothing changes (returns
        None). If customers wait, the head is removed and assigned to this admin (returned).
        Otherwise the admin is added to the free set (if not there) with ``now`` as its
        free-since."""
        ...

    async def admin_away(self, admin: str) -> None:
        """Leave the free set (busy elsewhere, away, offline); an assignment stays."""
        ...

    async def finish(self, admin: str, *, now: float) -> str | None:
        """End the admin's current assignment (returns the customer); records the handle time
        (now - assigned_at) into the statistics. Does NOT make the admin free (the caller
        calls admin_ready)."""
        ...

    async def assignment_of_admin(self, admin: str) -> str | None: ...

    async def assignment_of_customer(self, customer: str) -> str | None: ...

    async def free_admins(self) -> list[str]:
        """The free admins, longest free first."""
        ...

    async def assignments(self) -> list[Assignment]:
        """Every admin serving now, with its customer and since when (longest first), so any
        process can show talk times and feed ``estimate``'s ``free_soon``."""
        ...

    async def mark_disconnected(self, customer: str, *, until: float) -> bool:
        """Keep a waiting customer's place until ``until``; False when it is not waiting."""
        ...

    async def mark_connected(self, customer: str) -> bool:
        """Clear the disconnect mark; True when the customer is (still) waiting."""
        ...

    async def expire_disconnected(self, *, now: float) -> list[str]:
        """Atomic: remove the waiting customers whose grace ended (until <= now); returned in
        queue order."""
        ...

    async def expire_waited(self, *, now: float, max_wait: float) -> list[str]:
        """Atomic: remove the customers waiting for max_wait or longer (joined_at <= now -
        max_wait); returned in queue order."""
        ...

    async def handle_time(self) -> float | None:
        """The EWMA of handle times in seconds, None before data."""
        ...

    async def handle_time_spread(self) -> float | None:
        """The EWMA of the handle times' absolute deviations in seconds, None before data."""
        ...

    async def handle_stats(self) -> HandleStats | None:
        """EWMA, spread and number of handle times in one read; None before data."""
        ...

    async def version(self) -> int:
        """Grows with every change of the waiting list or the assignments."""
        ...
