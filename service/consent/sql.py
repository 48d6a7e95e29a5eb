"""Statement execution for the consent store, with driver errors wrapped at the boundary."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Result
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import Conflict, StorageError


async def execute(
    conn: AsyncConnection, statement: Any, params: Iterable[Any] | None = None
) -> Result[Any]:
    try:
        result: Result[Any]
        if params is None:
            result = await conn.execute(statement)
        else:
            result = await conn.execute(statement, list(params))
        return result
    except IntegrityError as exc:
        # The only unique keys are the state's subject (inserted idempotently) and the event
        # chain's (subject, seq): a clash means another writer appended first.
        raise Conflict(
            "consent changed concurrently; retry", details={"reason": "concurrent_update"}
        ) from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"consent storage failed: {type(exc).__name__}") from exc
