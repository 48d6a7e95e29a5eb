"""tracking: sites and their people, sessions, events, intents, ingest bookkeeping, rollups

Revision ID: 0020_tracking
Revises: 0001_foundation

``track_events``'s primary key is ``(id, received_at)`` on MariaDB, so that the table can be
partitioned by month of ``received_at``; SQLite keeps ``id`` alone (its row number).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.db.types import ExactString, JSONType, UTCDateTime

revision = "0020_tracking"
down_revision = "0001_foundation"
branch_labels = ("tracking",)
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLES = (
    "sites",
    "people",
    "site_members",
    "track_sessions",
    "track_events",
    "track_event_ids",
    "track_intents",
    "track_idempotency",
    "track_usage",
    "track_daily",
)


def upgrade() -> None:
    mariadb = op.get_bind().dialect.name in ("mysql", "mariadb")
    events_key = [
        sa.PrimaryKeyConstraint("id", "received_at", name="pk_track_events")
        if mariadb
        else sa.PrimaryKeyConstraint("id", name="pk_track_events")
    ]
    op.create_table(
        "sites",
        sa.Column("id", BigId, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("public_key", ExactString(40), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("domains", JSONType, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sites"),
        sa.UniqueConstraint("public_key", name="uq_sites_public_key"),
    )
    op.create_table(
        "people",
        sa.Column("id", BigId, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("email", ExactString(191), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("telegram_chat_id", sa.String(64), nullable=True),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_people"),
        sa.UniqueConstraint("email", name="uq_people_email"),
    )
    op.create_table(
        "site_members",
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("person_id", BigId, nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "person_id", name="pk_site_members"),
    )
    op.create_index("ix_site_members_person", "site_members", ["person_id"])
    op.create_table(
        "track_sessions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("visitor_id", ExactString(64), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("page_views", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("landing_page", sa.String(512), nullable=True),
        sa.Column("referrer", sa.String(512), nullable=True),
        sa.Column("source", sa.String(100), nullable=True),
        sa.Column("medium", sa.String(100), nullable=True),
        sa.Column("campaign", sa.String(200), nullable=True),
        sa.Column("term", sa.String(200), nullable=True),
        sa.Column("content", sa.String(200), nullable=True),
        sa.Column("gclid", ExactString(255), nullable=True),
        sa.Column("wbraid", ExactString(255), nullable=True),
        sa.Column("gbraid", ExactString(255), nullable=True),
        sa.Column("device", sa.String(8), nullable=False),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("consent_subject", ExactString(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_track_sessions"),
    )
    op.create_index("ix_track_sessions_site_started", "track_sessions", ["site_id", "started_at"])
    op.create_index(
        "ix_track_sessions_site_visitor",
        "track_sessions",
        ["site_id", "visitor_id", "last_seen_at"],
    )
    op.create_table(
        "track_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("session_id", BigId, nullable=False),
        sa.Column("event_id", ExactString(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=True),
        sa.Column("path", sa.String(512), nullable=True),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("props", JSONType, nullable=True),
        *events_key,
    )
    op.create_index(
        "ix_track_events_session", "track_events", ["site_id", "session_id", "occurred_at"]
    )
    op.create_index("ix_track_events_site_received", "track_events", ["site_id", "received_at"])
    op.create_table(
        "track_event_ids",
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("event_id", ExactString(64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "event_id", name="pk_track_event_ids"),
    )
    op.create_index("ix_track_event_ids_received", "track_event_ids", ["received_at"])
    op.create_table(
        "track_intents",
        sa.Column("id", BigId, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("session_id", BigId, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("stamp", ExactString(64), nullable=False),
        sa.Column("ref_code", ExactString(16), nullable=True),
        sa.Column("gclid", ExactString(255), nullable=True),
        sa.Column("wbraid", ExactString(255), nullable=True),
        sa.Column("gbraid", ExactString(255), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("lead_score", sa.SmallInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("sealed_at", UTCDateTime(), nullable=True),
        sa.Column("sealed_by", sa.String(64), nullable=True),
        sa.Column("conversation_id", BigId, nullable=True),
        sa.Column("call_number", sa.String(32), nullable=True),
        sa.Column("call_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_track_intents"),
        sa.UniqueConstraint("ref_code", name="uq_track_intents_ref_code"),
        sa.UniqueConstraint("site_id", "stamp", name="uq_track_intents_stamp"),
    )
    op.create_index("ix_track_intents_session", "track_intents", ["site_id", "session_id"])
    op.create_index("ix_track_intents_site_created", "track_intents", ["site_id", "created_at"])
    op.create_index(
        "ix_track_intents_site_kind", "track_intents", ["site_id", "kind", "created_at"]
    )
    op.create_index(
        "ix_track_intents_site_status", "track_intents", ["site_id", "status", "created_at"]
    )
    op.create_table(
        "track_idempotency",
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("key", ExactString(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("body", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "key", name="pk_track_idempotency"),
    )
    op.create_index("ix_track_idempotency_created", "track_idempotency", ["created_at"])
    op.create_table(
        "track_usage",
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("intents", sa.BigInteger(), nullable=False),
        sa.Column("warned", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "month", name="pk_track_usage"),
    )
    op.create_table(
        "track_daily",
        sa.Column("site_id", BigId, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("dimension", sa.String(10), nullable=False),
        sa.Column("value", sa.String(191), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("visitors", sa.Integer(), nullable=False),
        sa.Column("page_views", sa.Integer(), nullable=False),
        sa.Column("ads_sessions", sa.Integer(), nullable=False),
        sa.Column("phone_intents", sa.Integer(), nullable=False),
        sa.Column("whatsapp_intents", sa.Integer(), nullable=False),
        sa.Column("sales", sa.Integer(), nullable=False),
        sa.Column("sales_value", sa.Numeric(16, 2), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "day", "dimension", "value", name="pk_track_daily"),
    )


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
