"""Google Ads offline conversions' part of the settings (``KERVAN_ADS_*``), composed into
``service.settings.Settings``.

A leaf module (pydantic and the standard library only). The OAuth token endpoint and the Ads API
base URL are settings so that tests point them at a local server speaking the real wire format.
Uploads need the developer token, the OAuth client and the token key; without them no site can
connect (``PUT .../ads/connection`` answers 409 naming what is missing).
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

#: Google Ads caps one ``uploadClickConversions`` request at 2,000 conversions
#: (``ConversionUploadError.TOO_MANY_CONVERSIONS_IN_REQUEST``: "Upload fewer than 2001 events").
MAX_BATCH = 2000
TOKEN_KEY_BYTES = 32
_API_VERSION = re.compile(r"^v[0-9]{1,3}$")


def decode_token_key(value: str) -> bytes:
    """The 32 raw bytes of a base64 (standard or url-safe, padded or not) key."""
    text = value.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 (e.g. `openssl rand -base64 32`)") from None
    if len(raw) != TOKEN_KEY_BYTES:
        raise ValueError(f"must decode to exactly {TOKEN_KEY_BYTES} bytes, not {len(raw)}")
    return raw


class AdsSettings(BaseModel):
    ads_oauth_token_url: str = Field(
        default="https://oauth2.googleapis.com/token",
        description="Google's OAuth 2.0 token endpoint (refresh-token grant).",
    )
    ads_api_base_url: str = Field(
        default="https://googleads.googleapis.com",
        description="Google Ads API REST base URL (tests point it at a local double).",
    )
    # Major versions live about 12 months (v22 was sunset on 2026-10-07); Google's sunset-dates
    # page recommends v26 to new integrations. The fields used here are the same in all of them.
    ads_api_version: str = Field(
        default="v26", description="Google Ads API version in request paths, e.g. `v26`."
    )
    ads_developer_token: SecretStr | None = Field(
        default=None, description="Google Ads API developer token (the `developer-token` header)."
    )
    ads_oauth_client_id: str | None = Field(
        default=None,
        max_length=256,
        description="OAuth client id the sites' refresh tokens belong to.",
    )
    ads_oauth_client_secret: SecretStr | None = Field(
        default=None, description="OAuth client secret (with the client id)."
    )
    ads_token_key: SecretStr | None = Field(
        default=None,
        description="Encrypts the sites' refresh tokens at rest (AES-256-GCM): 32 bytes, base64; "
        "unset = no site can connect.",
    )
    ads_batch_size: int = Field(
        default=MAX_BATCH,
        ge=1,
        le=MAX_BATCH,
        description="Conversions per uploadClickConversions request (Google's cap: 2,000).",
    )
    ads_request_timeout_seconds: float = Field(
        default=20.0, gt=0, le=120, description="HTTP timeout of one token or upload request."
    )
    ads_max_attempts: int = Field(
        default=12,
        ge=1,
        le=100,
        description="Requests one conversion may take part in before it fails for good "
        "(`retries_exhausted`); a paused connection or an open breaker spends none.",
    )
    ads_retry_backoff_base_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="Backoff after a 429, 5xx or timeout: base of the exponential delay.",
    )
    ads_retry_backoff_cap_seconds: float = Field(
        default=6 * 3600.0, ge=0, le=86_400, description="Longest backoff between two requests."
    )
    ads_breaker_window_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Per-customer breaker: error-rate window."
    )
    ads_breaker_min_calls: int = Field(
        default=5, ge=1, le=1000, description="Per-customer breaker: calls before it may open."
    )
    ads_breaker_failure_ratio: float = Field(
        default=0.5, gt=0, le=1, description="Per-customer breaker: failure ratio that opens it."
    )
    ads_breaker_open_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="Per-customer breaker: time open before a probe.",
    )

    @field_validator("ads_oauth_token_url", "ads_api_base_url")
    @classmethod
    def _check_ads_urls(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        return value.strip().rstrip("/")

    @field_validator("ads_api_version")
    @classmethod
    def _check_ads_api_version(cls, value: str) -> str:
        if not _API_VERSION.match(value):
            raise ValueError("must look like v26")
        return value

    @field_validator("ads_token_key")
    @classmethod
    def _check_ads_token_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        decode_token_key(value.get_secret_value())
        return value

    @field_validator("ads_developer_token", "ads_oauth_client_secret")
    @classmethod
    def _blank_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return value

    @field_validator("ads_oauth_client_id")
    @classmethod
    def _blank_client_is_unset(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value.strip()
