"""Admin accounts: who may log in with a one-time code sent to their Telegram chat."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, UniqueConstraint

from service.db.metadata import metadata
from service.db.types import ExactString, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")

admins = Table(
    "admins",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Lower-case by validation; compared byte for byte all the same (MariaDB pads and folds).
    Column("name", ExactString(64), nullable=False),
    Column("telegram_chat_id", String(64), nullable=False),
    Column("language", String(2), nullable=False),
    Column("disabled_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("name", name="uq_admins_name"),
)
