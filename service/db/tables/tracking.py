"""Lead tracking for many sites: tenants (sites) and their people, and each site's sessions,
events, intents, ingest bookkeeping and daily rollups.

Every tracking table but ``sites`` and ``people`` carries ``site_id``, and every query of them
goes through ``service.tracking.scope`` (a test fails any statement on them without a site
condition). Ids are auto-increment integers so that cursor pagination is an index range scan;
every index a dashboard query needs starts with ``site_id``.

``track_events`` is the table that grows without bound: on MariaDB it is partitioned by month of
``received_at`` (partitions made ahead by a background job, dropped whole by retention), so its
primary key includes ``received_at``, and dedup of client event ids lives in a table of its own
(a unique key over a partitioned table would have to include the partition column).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
)

from service.db.metadata import metadata
from service.db.tables.ads import ads_attempts, ads_connections, ads_uploads
from service.db.types import ExactString, JSONType, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")

sites = Table(
    "sites",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    #: The public key the site's script sends (``st_`` + 24 url-safe characters).
    Column("public_key", ExactString(40), nullable=False),
    Column("name", String(120), nullable=False),
    #: Host names the site's pages are served from, exact and lower-case (``example.com``,
    #: ``www.example.com``); an ingest's ``Origin`` must be ``https://`` one of them.
    Column("domains", JSONType, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("time_zone", String(64), nullable=False),
    #: Site options: plan limits, speculation segment, lead-score weights (JSON object).
    Column("config", JSONType, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("deleted_at", UTCDateTime(), nullable=True),
    UniqueConstraint("public_key", name="uq_sites_public_key"),
)

#: People who sign in to sites' dashboards (platform admins are ``admins`` accounts).
people = Table(
    "people",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("email", ExactString(191), nullable=False),  # lower-case by validation
    Column("name", String(120), nullable=False),
    Column("language", String(2), nullable=False),
    Column("telegram_chat_id", String(64), nullable=True),
    Column("disabled_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("email", name="uq_people_email"),
)

site_members = Table(
    "site_members",
    metadata,
    Column("site_id", BigId, nullable=False),
    Column("person_id", BigId, nullable=False),
    Column("role", String(8), nullable=False),  # owner | editor | viewer
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("site_id", "person_id", name="pk_site_members"),
    Index("ix_site_members_person", "person_id"),
)

track_sessions = Table(
    "track_sessions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("site_id", BigId, nullable=False),
    #: The visitor id the script keeps (after analytics consent).
    Column("visitor_id", ExactString(64), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("page_views", Integer, nullable=False, default=0),
    Column("events", Integer, nullable=False, default=0),
    Column("landing_page", String(512), nullable=True),
    Column("referrer", String(512), nullable=True),
    Column("source", String(100), nullable=True),
    Column("medium", String(100), nullable=True),
    Column("campaign", String(200), nullable=True),
    Column("term", String(200), nullable=True),
    Column("content", String(200), nullable=True),
    Column("gclid", ExactString(255), nullable=True),
    Column("wbraid", ExactString(255), nullable=True),
    Column("gbraid", ExactString(255), nullable=True),
    Column("device", String(8), nullable=False),  # desktop | mobile | tablet | bot | other
    Column("country", String(2), nullable=True),
    #: The visitor's consent subject when the script knows it (ads uploads need its consent).
    Column("consent_subject", ExactString(64), nullable=True),
    Index("ix_track_sessions_site_started", "site_id", "started_at"),
    Index("ix_track_sessions_site_visitor", "site_id", "visitor_id", "last_seen_at"),
)

track_events = Table(
    "track_events",
    metadata,
    # On MariaDB the primary key is (id, received_at): a partitioned table's keys must hold the
    # partition column (migration 0020); SQLite needs the single-column key to number rows.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("site_id", BigId, nullable=False),
    Column("session_id", BigId, nullable=False),
    #: The client's event id (dedup: ``track_event_ids``).
    Column("event_id", ExactString(64), nullable=False),
    Column("kind", String(16), nullable=False),  # page_view | click | intent | custom
    Column("name", String(64), nullable=True),
    Column("path", String(512), nullable=True),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("props", JSONType, nullable=True),
    Index("ix_track_events_site_received", "site_id", "received_at"),
    Index("ix_track_events_session", "site_id", "session_id", "occurred_at"),
)

#: Client event ids seen per site, kept at least ``tracking_dedup_days``: a resent event is
#: stored once.
track_event_ids = Table(
    "track_event_ids",
    metadata,
    Column("site_id", BigId, nullable=False),
    Column("event_id", ExactString(64), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("site_id", "event_id", name="pk_track_event_ids"),
    Index("ix_track_event_ids_received", "received_at"),
)

track_intents = Table(
    "track_intents",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("site_id", BigId, nullable=False),
    Column("session_id", BigId, nullable=True),
    Column("kind", String(16), nullable=False),  # phone | whatsapp
    Column("target", String(255), nullable=False),  # the number or link clicked
    #: Unique per site: the click's event id, so a resent click is one intent.
    Column("stamp", ExactString(64), nullable=False),
    #: WhatsApp: the short code the script put in the pre-filled text (unique across sites,
    #: since one business number may serve several sites).
    Column("ref_code", ExactString(16), nullable=True),
    Column("gclid", ExactString(255), nullable=True),
    Column("wbraid", ExactString(255), nullable=True),
    Column("gbraid", ExactString(255), nullable=True),
    Column("status", String(10), nullable=False),  # pending | confirmed | junk | cancelled
    Column("lead_score", SmallInteger, nullable=False, default=0),
    Column("amount", Numeric(14, 2), nullable=True),
    Column("currency", String(3), nullable=True),
    Column("sealed_at", UTCDateTime(), nullable=True),
    Column("sealed_by", String(64), nullable=True),
    #: The CRM conversation a WhatsApp intent became, and a phone intent's matched call.
    Column("conversation_id", BigId, nullable=True),
    Column("call_number", String(32), nullable=True),
    Column("call_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("deleted_at", UTCDateTime(), nullable=True),
    UniqueConstraint("site_id", "stamp", name="uq_track_intents_stamp"),
    UniqueConstraint("ref_code", name="uq_track_intents_ref_code"),
    Index("ix_track_intents_site_created", "site_id", "created_at"),
    Index("ix_track_intents_site_status", "site_id", "status", "created_at"),
    Index("ix_track_intents_site_kind", "site_id", "kind", "created_at"),
    Index("ix_track_intents_session", "site_id", "session_id"),
    # The trash: a site's deleted intents by deletion time (migration 0026).
    Index("ix_track_intents_site_deleted", "site_id", "deleted_at"),
)

#: ``Idempotency-Key`` answers of ``POST /t/sync``, replayed for the same key.
track_idempotency = Table(
    "track_idempotency",
    metadata,
    Column("site_id", BigId, nullable=False),
    Column("key", ExactString(128), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("body", JSONType, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("site_id", "key", name="pk_track_idempotency"),
    Index("ix_track_idempotency_created", "created_at"),
)

#: Events and intents counted per site and month (the quota, and usage shown to owners).
track_usage = Table(
    "track_usage",
    metadata,
    Column("site_id", BigId, nullable=False),
    Column("month", String(7), nullable=False),  # YYYY-MM, in UTC
    Column("events", BigInteger, nullable=False, default=0),
    Column("intents", BigInteger, nullable=False, default=0),
    Column("warned", Boolean, nullable=False, default=False),  # superseded by the two below
    # The highest quota warning level sent this month per kind (0, the early percent, 100).
    Column("warned_events", SmallInteger, nullable=False, default=0, server_default="0"),
    Column("warned_intents", SmallInteger, nullable=False, default=0, server_default="0"),
    PrimaryKeyConstraint("site_id", "month", name="pk_track_usage"),
)

#: Daily aggregates (in the site's time zone) kept after raw events expire: per dimension
#: (``all``, ``source``, ``device``, ``landing``, ``country``) and value.
track_daily = Table(
    "track_daily",
    metadata,
    Column("site_id", BigId, nullable=False),
    Column("day", Date, nullable=False),
    Column("dimension", String(10), nullable=False),
    Column("value", String(191), nullable=False),
    Column("sessions", Integer, nullable=False, default=0),
    Column("visitors", Integer, nullable=False, default=0),
    Column("page_views", Integer, nullable=False, default=0),
    Column("ads_sessions", Integer, nullable=False, default=0),
    Column("phone_intents", Integer, nullable=False, default=0),
    Column("whatsapp_intents", Integer, nullable=False, default=0),
    Column("sales", Integer, nullable=False, default=0),
    Column("sales_value", Numeric(16, 2), nullable=False, default=0),
    PrimaryKeyConstraint("site_id", "day", "dimension", "value", name="pk_track_daily"),
    Index("ix_track_daily_site_dimension", "site_id", "dimension", "day"),
)

#: Calls a site's phone system reported (``POST /t/calls``, migration 0022), each matched to the
#: closest pending phone intent before it or kept unmatched; one row per (site, caller, time),
#: so a resent call is stored and matched once.
track_calls = Table(
    "track_calls",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("site_id", BigId, nullable=False),
    Column("caller", String(16), nullable=False),  # E.164
    Column("callee", String(16), nullable=True),  # E.164
    Column("called_at", UTCDateTime(), nullable=False),
    Column("duration_seconds", Integer, nullable=True),
    Column("intent_id", BigId, nullable=True),
    Column("received_at", UTCDateTime(), nullable=False),
    UniqueConstraint("site_id", "caller", "called_at", name="uq_track_calls_call"),
    Index("ix_track_calls_site", "site_id", "id"),
)

#: Every tracking table whose rows belong to one site (the scope guard's list).
SITE_SCOPED = (
    site_members,
    track_sessions,
    track_events,
    track_event_ids,
    track_intents,
    track_idempotency,
    track_usage,
    track_daily,
    track_calls,
    ads_connections,
    ads_uploads,
    ads_attempts,
)
