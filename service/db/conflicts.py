"""Transactions that MariaDB may abort for a lock conflict, run again.

InnoDB picks a victim when two transactions wait on each other's row or gap locks (1213,
"deadlock found ... try restarting transaction") or gives up waiting (1205); the whole
transaction rolled back, so running it again from the start is safe and is what the server
asks for. Anything else is raised at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.errors import StorageError

T = TypeVar("T")

#: The driver's error text of a deadlock victim and of a lock wait timeout.
LOCK_CONFLICTS = ("(1213,", "(1205,")
ATTEMPTS = 3


def is_lock_conflict(error: BaseException) -> bool:
    """A lock conflict: our ``StorageError`` or a driver's error (``.orig``) naming one."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else getattr(error, "message", error))
    return any(marker in text for marker in LOCK_CONFLICTS)


async def retry_lock_conflicts(
    transaction: Callable[[], Awaitable[T]], attempts: int = ATTEMPTS
) -> T:
    """``transaction()`` (which opens and commits its own transaction), again after a lock
    conflict, at most ``attempts`` times in all, with a short jittered pause between."""
    for attempt in range(attempts):
        try:
            return await transaction()
        except StorageError as error:
            if attempt + 1 == attempts or not is_lock_conflict(error):
                raise
            await asyncio.sleep(0.01 * (attempt + 1) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover
