"""One consent change in its own transaction, retried when a concurrent writer got there first.

The store locks the subject's state row, so a collision on the chain's ``(subject, seq)`` is
rare (two first writers of a new subject on a database without row locks); a fresh
transaction then reads the new head and appends after it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import Conflict
from service.db import Database

T = TypeVar("T")
WRITE_ATTEMPTS = 3


async def write(db: Database, change: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``change`` in a transaction; after ``WRITE_ATTEMPTS`` collisions the Conflict (409)
    reaches the caller."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            async with db.begin() as conn:
                return await change(conn)
        except Conflict:
            if attempt == WRITE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
