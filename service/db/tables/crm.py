"""WhatsApp webhook log and the CRM: contacts, conversations, messages, notes.

Ids are auto-increment integers so that cursor pagination is a plain index range scan.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

from service.db.metadata import metadata
from service.db.types import JSONType, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")
#: WhatsApp message ids are case-sensitive (base64 inside): compare them byte for byte on
#: MariaDB, whose default collation would treat ids differing only in case as duplicates.
ProviderId = String(191).with_variant(
    mysql.VARCHAR(191, collation="utf8mb4_bin"), "mysql", "mariadb"
)
#: Raw webhook bodies as text (MEDIUMTEXT on MariaDB): aiomysql cannot bind bytes parameters,
#: and a body that is not UTF-8 cannot be JSON anyway, so it is kept base64-encoded instead.
RawBody = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
#: Message texts: MariaDB's TEXT stops at 64 KB, less than one webhook may carry.
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

#: Every signed webhook delivery, stored before it is processed.
wa_webhook_events = Table(
    "wa_webhook_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("body", RawBody, nullable=False),
    Column("body_encoding", String(8), nullable=False),  # utf-8 | base64
    # received | processed | rejected | failed
    Column("state", String(16), nullable=False),
    Column("messages", Integer, nullable=False, default=0),
    Column("statuses", Integer, nullable=False, default=0),
    Column("issues", JSONType, nullable=True),
    Column("processed_at", UTCDateTime(), nullable=True),
    Index("ix_wa_webhook_events_state_id", "state", "id"),
)

crm_contacts = Table(
    "crm_contacts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(191), nullable=True),
    Column("email", String(191), nullable=True),
    Column("phone", String(32), nullable=True),
    Column("wa_id", String(64), nullable=True, unique=True),
    #: A live-support customer's person id (``cu_...``): one contact per customer, even when
    #: two processes write its first messages at once.
    Column("web_id", String(64), nullable=True),
    Column("locale", String(8), nullable=False, default="tr"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("deleted_at", UTCDateTime(), nullable=True),
    Index("ix_crm_contacts_name", "name"),
    Index("ix_crm_contacts_phone", "phone"),
    Index("ix_crm_contacts_deleted", "deleted_at"),  # the trash (migration 0026)
    UniqueConstraint("web_id", name="uq_crm_contacts_web_id"),
)

crm_convos = Table(
    "crm_convos",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("contact_id", BigId, ForeignKey("crm_contacts.id"), nullable=False),
    Column("channel", String(16), nullable=False),  # whatsapp | email
    Column("status", String(16), nullable=False),  # open | closed
    # "<contact>:<channel>" while open, NULL once closed: the unique index allows at most one
    # open conversation per contact and channel even when two webhooks race.
    Column("open_key", String(64), nullable=True, unique=True),
    Column("meta", JSONType, nullable=True),
    Column("unread", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_inbound_at", UTCDateTime(), nullable=True),
    Column("last_activity_at", UTCDateTime(), nullable=False),
    Index("ix_crm_convos_activity", "last_activity_at", "id"),
    Index("ix_crm_convos_status_activity", "status", "last_activity_at", "id"),
    Index("ix_crm_convos_contact", "contact_id"),
)

crm_messages = Table(
    "crm_messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("convo_id", BigId, ForeignKey("crm_convos.id"), nullable=False),
    Column("direction", String(3), nullable=False),  # in | out
    Column("kind", String(32), nullable=False),
    Column("body", LongText, nullable=True),
    Column("payload", JSONType, nullable=True),
    Column("provider_id", ProviderId, nullable=True, unique=True),
    Column("reply_to", ProviderId, nullable=True),
    # inbound: received | read; outbound: queued | sent | delivered | read | failed
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("queued_at", UTCDateTime(), nullable=True),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("delivered_at", UTCDateTime(), nullable=True),
    Column("read_at", UTCDateTime(), nullable=True),
    Column("failed_at", UTCDateTime(), nullable=True),
    Column("error", JSONType, nullable=True),
    Column("created_by", String(191), nullable=True),
    Column("marketing", Boolean, nullable=False, default=False),
    Index("ix_crm_messages_convo_id", "convo_id", "id"),
)

#: Status webhooks that arrived before the message's provider id was known.
crm_pending_statuses = Table(
    "crm_pending_statuses",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("provider_id", ProviderId, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_at", UTCDateTime(), nullable=False),
    Column("errors", JSONType, nullable=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Index("ix_crm_pending_statuses_provider_id", "provider_id"),
)

crm_notes = Table(
    "crm_notes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("contact_id", BigId, ForeignKey("crm_contacts.id"), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_by", String(191), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("deleted_at", UTCDateTime(), nullable=True),
    Index("ix_crm_notes_contact_id", "contact_id", "id"),
    Index("ix_crm_notes_deleted", "deleted_at"),  # the trash (migration 0026)
)
