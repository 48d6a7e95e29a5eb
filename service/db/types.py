"""Column types that behave the same on SQLite and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: JSON document column (MariaDB's JSON is LONGTEXT with a validity check; SQLite stores text).
JSONType = JSON().with_variant(mysql.JSON(), "mysql", "mariadb")


def ExactString(length: int) -> String:
    """VARCHAR compared byte for byte on both databases.

    MariaDB's default utf8mb4 collations ignore case (and NUL), so identifiers such as
    ``alice`` and ``Alice`` would be one key there and two on SQLite.
    """
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC with microseconds, always returned timezone-aware.

    Neither SQLite nor MariaDB's DATETIME keeps a zone, so the zone is fixed to UTC at the
    boundary instead of trusting the session time zone of whichever server we talk to.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_timestamp(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
