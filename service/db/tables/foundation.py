"""Tables every feature shares: the audit log and the heads of its hash chains."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, UniqueConstraint

from service.db.metadata import metadata
from service.db.types import JSONType, UTCDateTime

# BIGINT on MariaDB, but SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: Append-only (``service/audit``): rows are inserted, never updated or deleted by kervan.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("ts", UTCDateTime(), nullable=False),
    Column("actor", String(191), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(191), nullable=False),
    Column("details", JSONType, nullable=True),
    # The site the record belongs to; null: the platform's (admins, lockouts, dead letters).
    Column("site_id", BigInteger, nullable=True),
    Column("request_id", String(128), nullable=True),
    # What changed: the changed fields before and after (null: created / removed / n/a).
    Column("state_before", JSONType, nullable=True),
    Column("state_after", JSONType, nullable=True),
    # The hash chain (core/audit/chain.py): the site id, 0 for the platform; 1, 2, ... in it.
    Column("chain", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # Two writers appending the same seq would fork the chain; the second one fails here.
    UniqueConstraint("chain", "seq", name="uq_audit_events_chain_seq"),
    Index("ix_audit_events_subject_ts", "subject", "ts"),
    Index("ix_audit_events_action_ts", "action", "ts"),
    Index("ix_audit_events_site_id", "site_id", "id"),
    Index("ix_audit_events_site_ts", "site_id", "ts"),
)

#: Each chain's end, locked by every writer of the chain (so appends queue instead of forking)
#: and compared by verification (so removing the newest records shows).
audit_heads = Table(
    "audit_heads",
    metadata,
    Column("chain", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=True),
)
