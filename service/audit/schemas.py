"""The audit API's models: query filters and the records it answers with."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from core.audit.chain import BreakReason, ChainReport
from service.audit.queries import AuditFilter
from service.errors import ApiError
from service.openapi import validation_rules
from service.tracking.dashboard_ledger import MAX_ID
from service.tracking.dashboard_schemas import PathId

MAX_PAGE = 500
DEFAULT_PAGE = 100
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)
RULE_RANGE = "since and until lie between 1970-01-01 and 9999-12-31 (UTC)"

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Action = Annotated[str, Field(min_length=1, max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=191)]
_RFC3339_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")


def _rfc3339(value: object) -> object:
    # pydantic would also take a number of seconds since the epoch ("0.5"): not a date-time.
    if isinstance(value, str) and not _RFC3339_DATE.match(value):
        raise ValueError("not an RFC 3339 date-time")
    return value


Moment = Annotated[
    AwareDatetime, BeforeValidator(_rfc3339), Field(description="RFC 3339 with an offset")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuditSitePath(Strict):
    site_id: PathId


class SiteAuditQuery(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(RULE_RANGE))

    action: Action | SkipJsonSchema[None] = Field(default=None, description="Only this action")
    since: Moment | SkipJsonSchema[None] = Field(default=None, description="At or after this")
    until: Moment | SkipJsonSchema[None] = Field(default=None, description="Before this")
    after: Id | SkipJsonSchema[None] = Field(
        default=None, description="`next_after` of the previous page (older records follow)"
    )
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)

    def to_filter(self) -> AuditFilter:
        return AuditFilter(
            limit=self.limit,
            after=self.after,
            action=self.action,
            since=_moment(self.since),
            until=_moment(self.until),
        )


class AdminAuditQuery(SiteAuditQuery):
    site_id: Id | SkipJsonSchema[None] = Field(default=None, description="Only this site's")
    platform: bool = Field(default=False, description="Only records of no site (the platform's)")
    subject: Name | SkipJsonSchema[None] = Field(default=None, description="Only this subject")
    actor: Name | SkipJsonSchema[None] = Field(
        default=None, description="Only this actor (e.g. admin:ops, person:12)"
    )

    def to_filter(self) -> AuditFilter:
        return AuditFilter(
            limit=self.limit,
            after=self.after,
            action=self.action,
            subject=self.subject,
            actor=self.actor,
            since=_moment(self.since),
            until=_moment(self.until),
            site_id=self.site_id,
            platform=self.platform,
        )


def _moment(value: datetime | None) -> datetime | None:
    """``value`` in UTC; refused (422, naming the rule) outside what both databases store."""
    if value is None:
        return None
    # Compared before converting: a far date with an offset does not fit in UTC.
    if not EARLIEST <= value <= LATEST:
        raise ApiError(
            422,
            "validation_failed",
            RULE_RANGE,
            [{"field": "query", "message": RULE_RANGE, "type": "value_error"}],
        )
    return value.astimezone(UTC)


class AuditRecordOut(BaseModel):
    id: int
    site_id: int | None = Field(description="Null: a record of the platform (no site)")
    seq: int = Field(description="The record's place in its chain (the site's or the platform's)")
    ts: datetime
    actor: str = Field(description="Who: person:<id>, admin:<id>, cli, system, worker:<name>")
    action: str
    subject: str
    request_id: str | None = Field(description="The HTTP request that made the change")
    details: Any = Field(description="What the action needs said besides before/after")
    before: dict[str, Any] | None = Field(description="The changed fields' values before")
    after: dict[str, Any] | None = Field(description="The changed fields' values after")
    prev_hash: str = Field(description="The previous record's hash in the same chain")
    hash: str = Field(description="SHA-256 over the record (core/audit/chain.py)")


class AuditPageOut(BaseModel):
    items: list[AuditRecordOut]
    next_after: int | None = Field(description="`after` of the next page; null: the last page")


class VerifyQuery(Strict):
    site_id: Id | SkipJsonSchema[None] = Field(
        default=None, description="This site's chain; none: the platform's"
    )


class ChainBreakOut(BaseModel):
    seq: int = Field(description="Where the chain breaks")
    reason: BreakReason
    detail: str


class ChainReportOut(BaseModel):
    site_id: int | None = Field(description="Null: the platform's chain")
    ok: bool
    checked: int = Field(description="Records checked (up to the first break)")
    head_seq: int = Field(description="The head kept beside the log: note it to anchor the chain")
    head_hash: str
    first_break: ChainBreakOut | None


def report_out(report: ChainReport) -> dict[str, Any]:
    broken = report.first_break
    return {
        "site_id": report.chain or None,
        "ok": report.ok,
        "checked": report.checked,
        "head_seq": report.head.seq,
        "head_hash": report.head.hash,
        "first_break": None
        if broken is None
        else {"seq": broken.seq, "reason": broken.reason, "detail": broken.detail},
    }
