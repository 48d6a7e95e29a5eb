"""Request and response models of the consent API (they also feed /openapi.json)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from service.consent.export import Period
from service.errors import ApiError

EVENT_PAGE_MAX = 1000
#: Event sequence numbers are BIGINT; a larger cursor cannot be bound by the database drivers.
MAX_SEQ = 2**63 - 1


class PurposeOut(BaseModel):
    status: Literal["granted", "denied", "expired", "unknown"]
    expires_at: float | None
    ts: float | None
    source: str | None
    banner_version: str | None
    stale: bool


class ConsentOut(BaseModel):
    subject: str
    region: str | None
    purposes: dict[str, PurposeOut]
    needs_prompt: list[str]
    allowed: dict[str, bool]
    consent_mode: dict[str, Literal["granted", "denied"]]
    banner_version: str
    updated_at: float | None
    token: str
    token_expires_at: int


class MintedConsentOut(ConsentOut):
    subject_proof: str = Field(description="Send as X-Consent-Proof on PUT/DELETE")


class SubjectProofOut(BaseModel):
    subject: str
    subject_proof: str


class ChoicesIn(BaseModel):
    choices: dict[str, Literal["granted", "denied"]] = Field(min_length=1, max_length=32)
    banner_version: str | None = Field(default=None, min_length=1, max_length=64)
    region: str | None = Field(default=None, max_length=8)
    source: Literal["banner", "api"] = "api"


class AdminChoicesIn(BaseModel):
    choices: dict[str, Literal["granted", "denied"]] = Field(min_length=1, max_length=32)
    region: str | None = Field(default=None, max_length=8)
    reason: str | None = Field(default=None, max_length=500)


class WithdrawQuery(BaseModel):
    purposes: str | None = Field(
        default=None, max_length=500, description="Comma-separated purposes (default: all)"
    )


class EventsQuery(BaseModel):
    after_seq: int = Field(default=0, ge=0, le=MAX_SEQ)
    limit: int = Field(default=100, ge=1, le=EVENT_PAGE_MAX)


class EventOut(BaseModel):
    subject: str
    seq: int
    ts_ms: int
    purpose: str
    value: str
    action: str
    prior_status: str
    source: str
    banner_version: str | None
    region: str | None
    expires_at_ms: int
    prev_hash: str
    hash: str


class ChainBreakOut(BaseModel):
    subject: str
    seq: int
    reason: str
    detail: str


class ChainReportOut(BaseModel):
    ok: bool
    checked: int
    breaks: list[ChainBreakOut]


class EventsOut(BaseModel):
    subject: str
    events: list[EventOut]
    next_after_seq: int | None
    verification: ChainReportOut


class PeriodQuery(BaseModel):
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    format: Literal["csv", "jsonl"] = "jsonl"

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    def period(self) -> Period:
        if self.end <= self.start:
            raise ApiError(
                422,
                "validation_failed",
                "'to' must be later than 'from'",
                [{"field": "query.to", "message": "must be later than 'from'"}],
            )
        return Period(
            math.floor(self.start.timestamp() * 1000), math.floor(self.end.timestamp() * 1000)
        )


class VerificationOut(BaseModel):
    ok: bool
    subjects: int
    checked: int
    exported: int
    break_count: int
    breaks: list[ChainBreakOut]
