"""Request and response models of a site's Google Ads routes (they also feed /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from service.openapi import validation_rules
from service.tracking.dashboard_ledger import MAX_ID
from service.tracking.dashboard_schemas import PathId

CUSTOMER_ID_PATTERN = r"^[0-9]{3}-?[0-9]{3}-?[0-9]{4}$"
ACTION_PATTERN = r"^(customers/[0-9]{10}/conversionActions/)?[0-9]{1,19}$"
#: OAuth refresh tokens are opaque printable ASCII (Google's are about 100 characters).
TOKEN_PATTERN = r"^[!-~]+$"  # noqa: S105 - a pattern, not a secret
MAX_TOKEN_CHARS = 512
MAX_PAGE = 200
#: The rule a schema cannot state, in the words of its 422 refusal.
RULE_FIRST_TOKEN = "refresh_token is required to connect"  # noqa: S105 - a rule, not a secret
#: Constraints on the member, not on the optional: pydantic states them in the schema there.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
CustomerId = Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)]
RefreshToken = Annotated[
    str, Field(min_length=8, max_length=MAX_TOKEN_CHARS, pattern=TOKEN_PATTERN)
]
Reason = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_:.-]+$")]
UploadStatus = Literal["pending", "uploaded", "failed", "not_eligible"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SitePath(Strict):
    site_id: PathId


class UploadPath(Strict):
    site_id: PathId
    intent_id: PathId


class ConnectionIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(RULE_FIRST_TOKEN))

    customer_id: str = Field(
        pattern=CUSTOMER_ID_PATTERN, description="The Google Ads customer (123-456-7890)"
    )
    conversion_action: str = Field(
        max_length=80,
        pattern=ACTION_PATTERN,
        description="The conversion action: customers/{id}/conversionActions/{id}, or its id",
    )
    login_customer_id: CustomerId | SkipJsonSchema[None] = Field(
        default=None, description="The manager account the access goes through, if any"
    )
    refresh_token: RefreshToken | SkipJsonSchema[None] = Field(
        default=None,
        description="The OAuth refresh token (scope adwords); stored encrypted, never shown "
        "again. Required to connect; omitted, a reconnect keeps the stored one",
    )


class ConnectionOut(BaseModel):
    connected: bool
    customer_id: str | None
    conversion_action: str | None
    login_customer_id: str | None
    status: Literal["active", "paused"] | None = Field(
        description="paused: uploads wait until the owner connects again (status_reason says why)"
    )
    status_reason: str | None
    status_message: str | None
    paused_at: datetime | None
    refresh_token_stored: bool = Field(description="The token itself is never shown")
    connected_by: str | None
    created_at: datetime | None
    updated_at: datetime | None


class UploadsQuery(Strict):
    status: UploadStatus | SkipJsonSchema[None] = None
    reason: Reason | SkipJsonSchema[None] = Field(
        default=None, description="Only uploads with this reason (e.g. EXPIRED_EVENT)"
    )
    before: Id | SkipJsonSchema[None] = Field(
        default=None, description="The last intent id of the previous page"
    )
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)


class UploadOut(BaseModel):
    intent_id: int
    status: Literal["pending", "uploaded", "failed", "not_eligible", "none"] = Field(
        description="none: the intent is not sealed (nothing to upload)"
    )
    reason: str | None = Field(
        description="Why it failed, is not eligible or still waits (Google's error code, or "
        "no_click_id, ads_consent_denied, not_connected, connection_paused, ...)"
    )
    message: str | None
    order_id: str | None = Field(description="The orderId Google deduplicates by")
    click_kind: Literal["gclid", "gbraid", "wbraid"] | None
    conversion_at: datetime | None
    value: str | None
    currency: str | None
    attempts: int
    next_attempt_at: datetime | None = Field(description="Pending: not before this")
    uploaded_at: datetime | None
    request_id: str | None = Field(description="Google's request-id of the last request")
    updated_at: datetime | None


class AttemptOut(BaseModel):
    attempt: int | None
    at: datetime
    outcome: str
    error_code: str | None
    request_id: str | None
    http_status: int | None
    latency_ms: float | None


class UploadDetailOut(UploadOut):
    attempts_log: list[AttemptOut] = Field(description="This intent's ledger, newest first")


class UploadsOut(BaseModel):
    items: list[UploadOut]
    next_before: int | None = Field(description="`before` of the next page; null: the last page")


class SummaryOut(BaseModel):
    connection: ConnectionOut
    pending: int
    uploaded: int
    failed: int
    not_eligible: int
    total: int
    failed_by_reason: dict[str, int]
    not_eligible_by_reason: dict[str, int]
    pending_by_reason: dict[str, int] = Field(description="What pending uploads wait for")
