"""A consent change is retried in a fresh transaction when a concurrent writer got there first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import Conflict
from service.audit import record_audit
from service.consent.writes import WRITE_ATTEMPTS, write
from service.db import Database
from service.db.tables.foundation import audit_events


async def _audit_rows(database: Database) -> int:
    async with database.connect() as conn:
        return int((await conn.scalar(select(func.count()).select_from(audit_events))) or 0)


def _colliding(times: int) -> tuple[list[int], Callable[[AsyncConnection], Awaitable[str]]]:
    """A change that writes a row, then collides ``times`` times before it succeeds."""
    attempts: list[int] = []

    async def change(conn: AsyncConnection) -> str:
        attempts.append(len(attempts) + 1)
        await record_audit(conn, actor="t", action="try", subject="s")
        if len(attempts) <= times:
            raise Conflict("consent changed concurrently; retry")
        return "done"

    return attempts, change


async def test_a_collision_is_retried_in_a_fresh_transaction(database: Database) -> None:
    attempts, change = _colliding(WRITE_ATTEMPTS - 1)
    assert await write(database, change) == "done"
    assert attempts == list(range(1, WRITE_ATTEMPTS + 1))
    # Each failed attempt rolled back what it wrote; only the last one committed.
    assert await _audit_rows(database) == 1


async def test_the_last_collision_reaches_the_caller(database: Database) -> None:
    attempts, change = _colliding(WRITE_ATTEMPTS)
    with pytest.raises(Conflict):
        await write(database, change)
    assert len(attempts) == WRITE_ATTEMPTS
    assert await _audit_rows(database) == 0


async def test_other_errors_are_not_retried(database: Database) -> None:
    calls = 0

    async def change(conn: AsyncConnection) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not a collision")

    with pytest.raises(ValueError):
        await write(database, change)
    assert calls == 1
