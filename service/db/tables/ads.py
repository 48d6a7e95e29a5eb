"""Offline conversions to Google Ads (migration 0024): each site's connection, the upload state
of each sealed intent, and the ledger of every request and row outcome.

Every table carries ``site_id`` and is in the scope guard's ``SITE_SCOPED`` list
(``service/db/tables/tracking.py``): every statement on them names the site.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
)

from service.db.metadata import metadata
from service.db.types import ExactString, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")

#: One Google Ads connection per site. The OAuth refresh token is stored only encrypted
#: (AES-256-GCM, ``service/ads/crypto.py``, bound to the site id); no column holds it in clear.
ads_connections = Table(
    "ads_connections",
    metadata,
    Column("site_id", BigId, nullable=False),
    Column("customer_id", String(10), nullable=False),  # ten digits, no dashes
    #: ``customers/{customer_id}/conversionActions/{id}``
    Column("conversion_action", String(80), nullable=False),
    Column("login_customer_id", String(10), nullable=True),
    Column("token_ciphertext", ExactString(1024), nullable=False),
    Column("status", String(8), nullable=False),  # active | paused
    #: Why uploads are paused (``token_revoked``, ``permission_denied:...``): the owner fixes
    #: it and connects again, which resumes them.
    Column("status_reason", String(80), nullable=True),
    Column("status_message", String(255), nullable=True),
    Column("paused_at", UTCDateTime(), nullable=True),
    #: Grows with every connect: a failure of a request made with an earlier connection
    #: does not pause the new one.
    Column("generation", Integer, nullable=False),
    #: The key of the one upload job responsible for the site's pending rows (None: none is
    #: needed, or the uploads are paused). Read and set under this row's lock by the seal, and
    #: cleared by the job only when no row is pending (``service/ads/flush.py``).
    Column("flush_key", String(64), nullable=True),
    #: When that job wakes next (it waits for a retry time): a seal that would wait much
    #: longer queues a job that takes over.
    Column("flush_wakes_at", UTCDateTime(), nullable=True),
    Column("connected_by", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("site_id", name="pk_ads_connections"),
)

#: The upload state of each sealed intent: ``pending`` (waiting for its batch, or for a retry
#: at ``next_attempt_at``), ``uploaded``, ``failed`` (for good, ``reason`` says why) or
#: ``not_eligible`` (never sent, ``reason`` says why). What is uploaded is copied here at the
#: seal, so a batch is read from this table alone.
ads_uploads = Table(
    "ads_uploads",
    metadata,
    Column("site_id", BigId, nullable=False),
    Column("intent_id", BigId, nullable=False),
    Column("status", String(12), nullable=False),
    Column("reason", String(80), nullable=True),
    Column("message", String(255), nullable=True),
    #: Stable per intent: Google counts one conversion per order id and conversion action,
    #: so a repeated upload can never count twice.
    Column("order_id", ExactString(64), nullable=False),
    Column("click_kind", String(6), nullable=True),  # gclid | gbraid | wbraid
    Column("click_id", ExactString(255), nullable=True),
    Column("consent_subject", ExactString(64), nullable=True),
    Column("conversion_at", UTCDateTime(), nullable=False),
    Column("value", Numeric(14, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    #: Requests this conversion took part in (a claim counts one; a request never made, e.g.
    #: the connection turned out paused, gives it back).
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    #: The batch that holds the row while its request is in flight, and until when: a worker
    #: killed mid-batch leaves a lease that runs out, and the row is claimed again.
    Column("lease_token", String(32), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("request_id", String(64), nullable=True),  # of the last request it was in
    Column("uploaded_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("site_id", "intent_id", name="pk_ads_uploads"),
    Index("ix_ads_uploads_due", "site_id", "status", "next_attempt_at"),
    Index("ix_ads_uploads_status", "site_id", "status", "intent_id"),
    Index("ix_ads_uploads_lease", "site_id", "lease_token"),
)

#: Append-only: every token refresh and upload request (``kind`` ``token``/``request``, no
#: intent) and every row's outcome in it (``kind`` ``row``), with Google's ``request-id``.
ads_attempts = Table(
    "ads_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("site_id", BigId, nullable=False),
    Column("intent_id", BigId, nullable=True),
    Column("kind", String(8), nullable=False),  # token | request | row
    Column("attempt", Integer, nullable=True),  # the row's attempt number
    Column("customer_id", String(10), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("error_code", String(80), nullable=True),
    Column("http_status", SmallInteger, nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("batch_size", Integer, nullable=True),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_ads_attempts_intent", "site_id", "intent_id", "id"),
    Index("ix_ads_attempts_site_at", "site_id", "at"),
)
