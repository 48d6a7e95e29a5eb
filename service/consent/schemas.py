"""Request and response models of the consent API (they also feed /openapi.json)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.consent import grammar
from service.consent.export import Period
from service.consent.grammar import Documented
from service.consent.policy import ConsentPolicy
from service.errors import ApiError
from service.openapi import runtime_enum, validation_rules

EVENT_PAGE_MAX = 1000
#: Event sequence numbers are BIGINT; a larger cursor cannot be bound by the database drivers.
MAX_SEQ = 2**63 - 1


#: Only registered purposes are accepted; the registry's error lists the unknown ones by name.
Choices = Annotated[
    dict[str, Literal["granted", "denied"]],
    Field(min_length=1, max_length=32),
    Documented(propertyNames={"enum": list(grammar.PURPOSE_NAMES)}),
]
#: Checked (and upper-cased) by core.consent.purposes.normalize_region.
Region = Annotated[
    str,
    Field(
        max_length=8,
        description="Country code, optionally with a subdivision ('DE', 'us-ca'); "
        "blank means unknown",
    ),
    Documented(pattern=grammar.REGION),
]


def _banner_versions(app: Any) -> tuple[str, ...]:
    policy: ConsentPolicy = app.state.runtime.facility(ConsentPolicy)
    return policy.banner.versions


#: Checked against the runtime's banner policy; the running app's document lists its versions.
BannerVersion = Annotated[
    str,
    Field(min_length=1, max_length=64),
    Documented(**runtime_enum("consent_banner_versions", _banner_versions)),
]


class SubjectPath(BaseModel):
    # validate_subject (core.consent.model) checks the same pattern, with its own message.
    subject: str = Field(
        min_length=1,
        max_length=grammar.SUBJECT_LENGTH,
        pattern=grammar.SUBJECT,
        description="A user id or an anonymous id minted by POST /consent",
    )


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
    choices: Choices
    banner_version: BannerVersion | None = Field(
        default=None,
        description="The banner version the choices were made under: one of the versions "
        "configured (KERVAN_CONSENT_BANNER_VERSION and _HISTORY), others are refused with 422; "
        "default: the current one",
    )
    region: Region | None = None
    source: Literal["banner", "api"] = "api"


class AdminChoicesIn(BaseModel):
    choices: Choices
    region: Region | None = None
    reason: str | None = Field(default=None, max_length=500)


class WithdrawQuery(BaseModel):
    purposes: Annotated[str, Documented(pattern=grammar.PURPOSE_LIST)] | None = Field(
        default=None, max_length=500, description="Comma-separated purposes (default: all)"
    )

    def purpose_list(self) -> list[str] | None:
        """The purposes to withdraw; None means every registered purpose."""
        return None if self.purposes is None else grammar.split_purposes(self.purposes)


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


#: The rule no schema can state; the 422 quotes it.
PERIOD_RULE = "'to' must be later than 'from'"


class PeriodQuery(BaseModel):
    model_config = ConfigDict(json_schema_extra=validation_rules(PERIOD_RULE))

    start: datetime = Field(
        alias="from",
        description="Start of the period (inclusive), an RFC 3339 date-time; "
        "without an offset, UTC",
    )
    end: datetime = Field(
        alias="to",
        description="End of the period (exclusive), an RFC 3339 date-time; must be later than "
        "'from' (422 otherwise)",
    )
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
                PERIOD_RULE,
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
