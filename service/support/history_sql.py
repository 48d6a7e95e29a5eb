"""A chat history batch's statements on MariaDB, written as SQL text on the driver connection.

A batch is a thousand rows of nine values. Through SQLAlchemy and aiomysql's parameter
formatting every value is escaped by a generic per-value path, and the conversation updates
render their ``IN`` lists the same way; measured at full relay load that was about a fifth of
the serving process's time. Here the constants of a role are literals, integers are written as
integers, and only the texts (message, provider id, admin id) go through the driver's escaping,
which honours the server's ``NO_BACKSLASH_ESCAPES`` mode. The statements run on the same
connection, inside the caller's transaction.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.tables.crm import crm_convos, crm_messages

_MESSAGES = crm_messages.name
_CONVOS = crm_convos.name
_INSERT_HEAD = (
    f"INSERT INTO {_MESSAGES} (convo_id, direction, kind, body, provider_id, status, "
    "created_at, created_by, marketing) VALUES "
)
#: Characters per insert statement at most (as aiomysql's own multi-row inserts: a batch of long
#: texts would otherwise pass the server's ``max_allowed_packet``).
MAX_STATEMENT = 1_000_000
#: MariaDB's insert-or-ignore by the unique ``provider_id`` that still reports other errors.
_INSERT_TAIL = " ON DUPLICATE KEY UPDATE provider_id = provider_id"


class _Escaper(Protocol):
    def escape_string(self, s: str) -> str: ...


class Row(Protocol):
    """What a row is made of (``history.ChatRecord`` with its conversation)."""

    @property
    def role(self) -> str: ...
    @property
    def sender(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def at(self) -> float: ...


async def driver_of(conn: AsyncConnection) -> Any:
    """The aiomysql connection under ``conn`` (same transaction)."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def run(driver: Any, sql: str) -> None:
    """Execute ``sql`` as it is (no parameter formatting: a ``%`` in a text stays one)."""
    cursor = await driver.cursor()
    try:
        await cursor.execute(sql)
    finally:
        await cursor.close()


async def fetch_ints(driver: Any, sql: str) -> list[int]:
    cursor = await driver.cursor()
    try:
        await cursor.execute(sql)
        return [int(row[0]) for row in await cursor.fetchall()]
    finally:
        await cursor.close()


def _quoted(driver: _Escaper, text: str) -> str:
    return "'" + driver.escape_string(text) + "'"


def _utc_literal(at: datetime) -> str:
    # Naive UTC with microseconds, as ``UTCDateTime`` stores it.
    return "'" + at.replace(tzinfo=None).isoformat(" ", "microseconds") + "'"


@functools.lru_cache(maxsize=4)
def _second_literal(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _time(at: float) -> str:
    """``_utc_literal(datetime.fromtimestamp(at, UTC))`` without a datetime per row (a batch's
    rows share a few seconds): the microseconds rounded half to even, as ``fromtimestamp``."""
    fraction, whole = math.modf(at)
    second = int(whole)
    micros = round(fraction * 1_000_000)
    if micros < 0:  # a time before 1970 (modf keeps the sign)
        second, micros = second - 1, micros + 1_000_000
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return f"'{_second_literal(second)}.{micros:06d}'"


def time_literal(at: datetime) -> str:
    return _utc_literal(at.astimezone(UTC))


def id_list(ids: Iterable[int]) -> str:
    return ",".join(str(int(i)) for i in ids)


def insert_messages(
    driver: _Escaper, rows: Sequence[tuple[int, Row, str]], *, max_length: int = MAX_STATEMENT
) -> list[str]:
    """Multi-row inserts-or-ignore of ``(conversation, record, provider id)`` rows, each
    statement at most about ``max_length`` characters (one row over it goes alone)."""
    statements: list[str] = []
    values: list[str] = []
    length = 0
    for convo, record, provider in rows:
        if record.role == "customer":
            head, by = f"({int(convo)},'in','text',", "NULL"
            status = "'received'"
        else:
            head, by = f"({int(convo)},'out','text',", _quoted(driver, record.sender)
            status = "'delivered'"
        value = (
            f"{head}{_quoted(driver, record.text)},{_quoted(driver, provider)},{status},"
            f"{_time(record.at)},{by},0)"
        )
        if values and length + len(value) > max_length:
            statements.append(_INSERT_HEAD + ",".join(values) + _INSERT_TAIL)
            values, length = [], 0
        values.append(value)
        length += len(value) + 1
    if values:
        statements.append(_INSERT_HEAD + ",".join(values) + _INSERT_TAIL)
    return statements


def still_open(convo_ids: Iterable[int]) -> str:
    return f"SELECT id FROM {_CONVOS} WHERE id IN ({id_list(convo_ids)}) AND open_key IS NOT NULL"


def count_inbound(convo_ids: Iterable[int], count: int, now: datetime) -> str:
    """``now``: the batch's activity time (``history.activity_time``), never set backwards."""
    at = time_literal(now)
    return (
        f"UPDATE {_CONVOS} SET unread = unread + {int(count)}, "
        f"last_inbound_at = GREATEST(COALESCE(last_inbound_at, {at}), {at}), "
        f"last_activity_at = GREATEST(last_activity_at, {at}) WHERE id IN ({id_list(convo_ids)})"
    )


def touch(convo_ids: Iterable[int], now: datetime) -> str:
    at = time_literal(now)
    return (
        f"UPDATE {_CONVOS} SET last_activity_at = GREATEST(last_activity_at, {at}) "
        f"WHERE id IN ({id_list(convo_ids)})"
    )
