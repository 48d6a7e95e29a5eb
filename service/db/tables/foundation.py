"""Tables every feature shares: the audit trail."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table

from service.db.metadata import metadata
from service.db.types import JSONType, UTCDateTime

# BIGINT on MariaDB, but SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("ts", UTCDateTime(), nullable=False),
    Column("actor", String(191), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(191), nullable=False),
    Column("details", JSONType, nullable=True),
    Index("ix_audit_events_subject_ts", "subject", "ts"),
    Index("ix_audit_events_action_ts", "action", "ts"),
)
