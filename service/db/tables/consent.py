"""Consent: the latest state per subject and the append-only, hash-chained event log."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, UniqueConstraint

from service.db.metadata import metadata
from service.db.types import ExactString, JSONType, UTCDateTime

# BIGINT on MariaDB, but SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

consent_state = Table(
    "consent_state",
    metadata,
    Column("subject", ExactString(64), primary_key=True),
    Column("region", String(8), nullable=True),
    Column("purposes", JSONType, nullable=False),
    # Head of the subject's event chain, so truncating the log is detectable.
    Column("seq", Integer, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=True),
)

consent_events = Table(
    "consent_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("subject", ExactString(64), nullable=False),
    Column("seq", Integer, nullable=False),
    # Whole milliseconds: the exact integers the event hash covers.
    Column("ts_ms", BigInteger, nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("value", String(8), nullable=False),
    Column("action", String(16), nullable=False),
    Column("prior_status", String(8), nullable=False),
    Column("source", String(32), nullable=False),
    Column("banner_version", String(64), nullable=True),
    Column("region", String(8), nullable=True),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # Two writers appending the same seq is a lost update; the second one fails here.
    UniqueConstraint("subject", "seq", name="uq_consent_events_subject_seq"),
    Index("ix_consent_events_ts_ms", "ts_ms"),
)
