"""crm: WhatsApp webhook log, contacts, conversations, messages, pending statuses, notes

Revision ID: 0006_crm
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from service.db.types import JSONType, UTCDateTime

revision = "0006_crm"
down_revision = "0001_foundation"
branch_labels = ("crm",)
depends_on = None


# WhatsApp message ids are case-sensitive: binary collation on MariaDB.
PROVIDER_ID = sa.String(191).with_variant(
    mysql.VARCHAR(191, collation="utf8mb4_bin"), "mysql", "mariadb"
)


def _id() -> sa.Column:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
        autoincrement=True,
    )


def _ref(table: str, name: str, target: str) -> sa.Column:
    """A foreign key named as ``service.db.metadata``'s naming convention names it."""
    return sa.Column(
        name, sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.ForeignKey(target, name=f"fk_{table}_{name}_{target.split('.')[0]}"), nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "wa_webhook_events",
        _id(),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column(
            "body", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=False
        ),
        sa.Column("body_encoding", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("messages", sa.Integer, nullable=False),
        sa.Column("statuses", sa.Integer, nullable=False),
        sa.Column("issues", JSONType, nullable=True),
        sa.Column("processed_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_wa_webhook_events_state_id", "wa_webhook_events", ["state", "id"])

    op.create_table(
        "crm_contacts",
        _id(),
        sa.Column("name", sa.String(191), nullable=True),
        sa.Column("email", sa.String(191), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("wa_id", sa.String(64), nullable=True),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("wa_id", name="uq_crm_contacts_wa_id"),
    )
    op.create_index("ix_crm_contacts_name", "crm_contacts", ["name"])
    op.create_index("ix_crm_contacts_phone", "crm_contacts", ["phone"])

    op.create_table(
        "crm_convos",
        _id(),
        _ref("crm_convos", "contact_id", "crm_contacts.id"),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("open_key", sa.String(64), nullable=True),
        sa.Column("meta", JSONType, nullable=True),
        sa.Column("unread", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_inbound_at", UTCDateTime(), nullable=True),
        sa.Column("last_activity_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("open_key", name="uq_crm_convos_open_key"),
    )
    op.create_index("ix_crm_convos_activity", "crm_convos", ["last_activity_at", "id"])
    op.create_index(
        "ix_crm_convos_status_activity", "crm_convos", ["status", "last_activity_at", "id"]
    )
    op.create_index("ix_crm_convos_contact", "crm_convos", ["contact_id"])

    op.create_table(
        "crm_messages",
        _id(),
        _ref("crm_messages", "convo_id", "crm_convos.id"),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column(
            "body", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=True
        ),
        sa.Column("payload", JSONType, nullable=True),
        sa.Column("provider_id", PROVIDER_ID, nullable=True),
        sa.Column("reply_to", PROVIDER_ID, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("queued_at", UTCDateTime(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("read_at", UTCDateTime(), nullable=True),
        sa.Column("failed_at", UTCDateTime(), nullable=True),
        sa.Column("error", JSONType, nullable=True),
        sa.Column("created_by", sa.String(191), nullable=True),
        sa.Column("marketing", sa.Boolean, nullable=False),
        sa.UniqueConstraint("provider_id", name="uq_crm_messages_provider_id"),
    )
    op.create_index("ix_crm_messages_convo_id", "crm_messages", ["convo_id", "id"])

    op.create_table(
        "crm_pending_statuses",
        _id(),
        sa.Column("provider_id", PROVIDER_ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_at", UTCDateTime(), nullable=False),
        sa.Column("errors", JSONType, nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_crm_pending_statuses_provider_id", "crm_pending_statuses", ["provider_id"]
    )

    op.create_table(
        "crm_notes",
        _id(),
        _ref("crm_notes", "contact_id", "crm_contacts.id"),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(191), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_crm_notes_contact_id", "crm_notes", ["contact_id", "id"])


def downgrade() -> None:
    for table in (
        "crm_notes",
        "crm_pending_statuses",
        "crm_messages",
        "crm_convos",
        "crm_contacts",
        "wa_webhook_events",
    ):
        op.drop_table(table)
