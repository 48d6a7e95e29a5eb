"""Lead tracking's part of the settings (``KERVAN_TRACKING_*``), composed into
``service.settings.Settings``. A leaf module: pydantic and the standard library only."""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator

# ---- people helper: SMTP delivery of login codes (service/tracking/mail.py)
_SMTP_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$")
_MAIL_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$|^[^@\s<>]+@localhost$")
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


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
        description="Default monthly intent quota per site (site config `monthly_intents`); "
        "past it clicks are stored as events but make no intent.",
    )
    tracking_quota_warning_percent: int = Field(
        default=80,
        ge=1,
        le=99,
        description="A site's owners are warned once a month per kind (events, intents) when "
        "its usage reaches this share of a limit, and again when it is used up.",
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

    # ---- people helper: SMTP delivery of login codes (unset host: e-mail delivery is off)
    tracking_smtp_host: str | None = Field(
        default=None,
        description="SMTP server that sends people's login codes by e-mail; unset = no e-mail "
        "(codes go only to people with a Telegram chat).",
    )
    tracking_smtp_port: int = Field(
        default=587, ge=1, le=65_535, description="SMTP port (587 STARTTLS, 465 TLS)."
    )
    tracking_smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="`starttls` (upgrade after connecting), `tls` (TLS from the first byte) or "
        "`none` (plain: a local relay only when credentials are set).",
    )
    tracking_smtp_username: str | None = Field(
        default=None, max_length=256, description="SMTP login (with the password)."
    )
    tracking_smtp_password: SecretStr | None = Field(
        default=None, description="SMTP password (with the username)."
    )
    tracking_smtp_from: str | None = Field(
        default=None,
        max_length=320,
        description="Sender of the e-mails: `codes@example.com` or `kervan <codes@example.com>`; "
        "required with the host.",
    )
    tracking_smtp_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="Connect and command timeout of one SMTP send."
    )

    # ---- trash helper: soft-deleted sites, intents, CRM contacts and notes
    tracking_trash_retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Soft-deleted sites, intents, CRM contacts and CRM notes can be restored "
        "for this many days after their deletion (410 `expired` after it); a background job "
        "then deletes them for good, with all their data.",
    )

    # ---- script helper: caching of the site script GET /t/{site_key}.js
    tracking_script_max_age_seconds: int = Field(
        default=86_400,
        ge=0,
        le=31_536_000,
        description="How long browsers and CDNs keep the site script before revalidating it "
        "(its URL carries no version: an update reaches visitors within this time; a "
        "revalidation is a 304 by the content-hashed ETag).",
    )

    @model_validator(mode="after")
    def _check_tracking_smtp(self) -> Self:
        host = self.tracking_smtp_host
        has_user = bool(self.tracking_smtp_username)
        has_password = self.tracking_smtp_password is not None
        if host is None:
            if has_user or has_password or self.tracking_smtp_from:
                raise ValueError(
                    "tracking_smtp_host: required when any other tracking_smtp_* value is set"
                )
            return self
        if not _SMTP_HOST.match(host):
            raise ValueError("tracking_smtp_host: a host name or address, no scheme or port")
        if not self.tracking_smtp_from:
            raise ValueError("tracking_smtp_from: required when tracking_smtp_host is set")
        _name, address = parseaddr(self.tracking_smtp_from)
        if not _MAIL_ADDRESS.match(address):
            raise ValueError("tracking_smtp_from: not an e-mail address")
        if has_user != has_password:
            raise ValueError(
                "tracking_smtp_username: the username and the password are set together"
            )
        if has_user and self.tracking_smtp_security == "none" and host.lower() not in _LOOPBACK:
            raise ValueError(
                "tracking_smtp_security: `none` would send the password in clear to a remote "
                "server; use starttls or tls"
            )
        return self
