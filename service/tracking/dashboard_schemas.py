"""Request and response models of a site's dashboard API (they also feed /openapi.json).

Path ids are validated against the models that document them (a malformed id names nothing:
404, like an unknown one); the rules a schema cannot state (one date against another, hour
buckets only where raw rows are kept) are listed with ``validation_rules`` in the words their
422 refusals quote.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from service.openapi import validation_rules
from service.tracking.dashboard import (
    DEFAULT_TOP,
    MAX_TOP,
    RANGE_RULES,
    RULE_BOUNDS,
    RULE_HOURS,
    RULE_HOURS_RAW,
    RULE_ORDER,
)
from service.tracking.dashboard_ledger import (
    CURSOR_MAX_LENGTH,
    CURSOR_PATTERN,
    DEFAULT_PAGE,
    MAX_ID,
    MAX_PAGE,
    IntentKind,
    IntentStatus,
)
from service.tracking.dashboard_metrics import Dimension

MAX_ID_DIGITS = len(str(MAX_ID))
MONEY_PATTERN = r"^-?[0-9]+\.[0-9]{2}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _decimal(value: object) -> object:
    # A path id is plain ASCII digits: "1e3", "+7" or " 7" name nothing.
    if isinstance(value, str) and not (
        value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS
    ):
        raise ValueError("not a decimal id")
    return value


PathId = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_decimal)]
Day = Annotated[date, Field(description="A local date of the site (YYYY-MM-DD)")]


class DashboardSitePath(Strict):
    site_id: PathId


class LedgerIntentPath(Strict):
    site_id: PathId
    intent_id: PathId


class TrackedSessionPath(Strict):
    site_id: PathId
    session_id: PathId


class DashboardRangeQuery(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=validation_rules(*RANGE_RULES))

    first: Day | SkipJsonSchema[None] = Field(
        default=None,
        alias="from",
        description="First local day (included); default: 29 days before 'to'",
    )
    last: Day | SkipJsonSchema[None] = Field(
        default=None, alias="to", description="Last local day (included); default: today"
    )


class DashboardTimelineQuery(DashboardRangeQuery):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=validation_rules(*RANGE_RULES, RULE_HOURS, RULE_HOURS_RAW),
    )

    bucket: Literal["hour", "day"] = "day"
    ads_only: bool = Field(default=False, description="Count ads traffic alone")


class DashboardBreakdownQuery(DashboardRangeQuery):
    dimension: Dimension
    limit: int = Field(
        default=DEFAULT_TOP, ge=1, le=MAX_TOP, description="Values listed; the rest is 'other'"
    )


class IntentLedgerQuery(Strict):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra=validation_rules(RULE_ORDER, RULE_BOUNDS)
    )

    first: Day | SkipJsonSchema[None] = Field(
        default=None, alias="from", description="Intents created on or after this local day"
    )
    last: Day | SkipJsonSchema[None] = Field(
        default=None, alias="to", description="Intents created on or before this local day"
    )
    status: IntentStatus | SkipJsonSchema[None] = None
    kind: IntentKind | SkipJsonSchema[None] = None
    ads_only: bool = Field(default=False, description="Intents of ads traffic alone")
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: str | SkipJsonSchema[None] = Field(
        default=None,
        max_length=CURSOR_MAX_LENGTH,
        description="next_cursor of the previous page (empty: the first page); any other "
        "string is refused with 400 invalid_cursor",
        json_schema_extra={"pattern": CURSOR_PATTERN},
    )


# ---------------------------------------------------------------- answers


class DashboardIntentCountsOut(BaseModel):
    phone: int
    whatsapp: int
    total: int


class DashboardMetricsOut(BaseModel):
    sessions: int
    visitors: int
    page_views: int
    ads_sessions: int
    intents: DashboardIntentCountsOut
    sales: int
    sales_value: str = Field(
        pattern=MONEY_PATTERN, description="Sum of the sales sealed in the site's currency"
    )


class DashboardDaysOut(BaseModel):
    from_: str = Field(alias="from")
    to: str


class DashboardFrameOut(BaseModel):
    site_id: int
    from_: str = Field(alias="from")
    to: str
    time_zone: str
    currency: str
    rollup_days: DashboardDaysOut | None = Field(
        description="The days whose session figures come from daily rollups: days whose raw "
        "rows expired, and in ranges over 31 days the closed days already rolled up (their "
        "intents are still counted one by one, so later seals show)"
    )
    expired_days: DashboardDaysOut | None = Field(
        description="The days whose raw rows may be gone: every figure from daily rollups"
    )
    raw_days: DashboardDaysOut | None = Field(description="The days counted from raw rows alone")
    visitors_exact: bool = Field(
        description="False when visitors are counted per day and summed (some days come from "
        "rollups); true when they are distinct over the whole range (or per bucket)"
    )


class DashboardKpisOut(DashboardFrameOut):
    totals: DashboardMetricsOut
    ads: DashboardMetricsOut = Field(
        description="Sessions with a click id, and their intents and sales"
    )


class TimelineBucketOut(DashboardMetricsOut):
    start: str = Field(description="The bucket's first instant, local time with its offset")


class DashboardTimelineOut(DashboardFrameOut):
    bucket: Literal["hour", "day"]
    ads_only: bool
    buckets: list[TimelineBucketOut]


class BreakdownRowOut(DashboardMetricsOut):
    value: str | None = Field(description="The dimension's value; null: none (direct, unknown)")


class BreakdownOtherOut(DashboardMetricsOut):
    values: int = Field(description="How many values are summed here")


class DashboardBreakdownOut(DashboardFrameOut):
    dimension: Dimension
    values: int
    rows: list[BreakdownRowOut]
    other: BreakdownOtherOut | None


class TrackClickIdsOut(BaseModel):
    gclid: str | None
    wbraid: str | None
    gbraid: str | None


class SessionAttributionOut(BaseModel):
    id: int
    started_at: str | None
    landing_page: str | None
    referrer: str | None
    source: str | None
    medium: str | None
    campaign: str | None
    term: str | None
    content: str | None
    gclid: str | None
    wbraid: str | None
    gbraid: str | None
    device: str | None
    country: str | None


class LedgerIntentOut(BaseModel):
    id: int
    session_id: int | None
    kind: str
    target: str
    status: str
    lead_score: int
    ref_code: str | None
    click_ids: TrackClickIdsOut
    amount: str | None = Field(pattern=MONEY_PATTERN)
    currency: str | None
    sealed_at: str | None
    sealed_by: str | None
    conversation_id: int | None
    call_number: str | None
    call_at: str | None
    created_at: str
    updated_at: str
    session: SessionAttributionOut | None = Field(
        description="The session's attribution; null without a session (or after retention)"
    )


class IntentLedgerPageOut(BaseModel):
    items: list[LedgerIntentOut]
    next_cursor: str | None


class TrackedEventOut(BaseModel):
    id: int
    event_id: str
    kind: str
    name: str | None
    path: str | None
    occurred_at: str
    received_at: str
    props: Any


class TrackedSessionIntentOut(BaseModel):
    id: int
    kind: str
    target: str
    status: str
    created_at: str


class TrackedSessionOut(BaseModel):
    id: int
    visitor_id: str
    started_at: str
    last_seen_at: str
    page_views: int
    events_count: int
    landing_page: str | None
    referrer: str | None
    source: str | None
    medium: str | None
    campaign: str | None
    term: str | None
    content: str | None
    click_ids: TrackClickIdsOut
    device: str
    country: str | None
    events: list[TrackedEventOut]
    events_truncated: bool
    intents: list[TrackedSessionIntentOut]


#: The names other tracking routes import these by (their OpenAPI components keep the class
#: names above, unique across the app: two path models both named ``SitePath`` would collide).
SitePath = DashboardSitePath
IntentPath = LedgerIntentPath
IntentOut = LedgerIntentOut
