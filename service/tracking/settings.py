"""Lead tracking's part of the settings (``KERVAN_TRACKING_*``), composed into
``service.settings.Settings``. A leaf module: pydantic and the standard library only."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TrackingSettings(BaseModel):
    tracking_session_timeout_minutes: int = Field(
        default=30,
        ge=1,
        le=24 * 60,
        description="Inactivity after which a visitor's next event starts a new session (a new "
        "campaign or click id starts one too).",
    )
    tracking_max_batch_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        le=8 * 1024 * 1024,
        description="Largest POST /t/sync body; larger ones get 413.",
    )
    tracking_max_batch_events: int = Field(
        default=500, ge=1, le=10_000, description="Most events in one POST /t/sync batch."
    )
    tracking_max_event_bytes: int = Field(
        default=32 * 1024,
        ge=256,
        le=1024 * 1024,
        description="Largest single event (its JSON); a larger one is rejected alone.",
    )
    tracking_dedup_days: int = Field(
        default=7,
        ge=7,
        le=400,
        description="How long a client event id is remembered: a resent event within it is "
        "stored once (`duplicate`).",
    )
    tracking_idempotency_hours: int = Field(
        default=24,
        ge=1,
        le=24 * 30,
        description="How long an Idempotency-Key's answer is replayed.",
    )
    tracking_monthly_events: int = Field(
        default=1_000_000,
        ge=0,
        le=10**12,
        description="Default monthly event quota per site (a site's config may set its own "
        "`monthly_events`); past it POST /t/sync answers 429 until the month's end.",
    )
    tracking_monthly_intents: int = Field(
        default=100_000,
        ge=0,
        le=10**12,
        description="Default monthly intent quota per site (site config `monthly_intents`).",
    )
    tracking_retention_months: int = Field(
        default=13,
        ge=1,
        le=120,
        description="Raw events and sessions older than this are dropped (whole partitions on "
        "MariaDB, bounded batches otherwise); daily rollups stay.",
    )
    tracking_partitions_ahead: int = Field(
        default=3,
        ge=1,
        le=24,
        description="Monthly partitions of the event table created ahead (MariaDB).",
    )
    tracking_maintenance_seconds: float = Field(
        default=3600.0,
        ge=1,
        le=86_400,
        description="Period of the tracking maintenance job (partitions, retention, rollups, "
        "dedup and idempotency expiry).",
    )
    tracking_call_match_minutes: int = Field(
        default=30,
        ge=1,
        le=24 * 60,
        description="POST /t/calls: a call is matched to the closest phone intent of the "
        "caller's site within this many minutes before it.",
    )
    tracking_country_header: str | None = Field(
        default=None,
        description="Header a trusted proxy sets with the visitor's country code (e.g. "
        "`CF-IPCountry`); read only from trusted proxies.",
    )
