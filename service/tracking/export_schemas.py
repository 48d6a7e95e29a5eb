"""Request models of the CSV export routes (they also feed /openapi.json)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.openapi import validation_rules
from service.tracking.dashboard_schemas import Day, PathId
from service.tracking.export import EXPORT_RANGE_RULES


class ExportSitePath(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: PathId


class ExportRangeQuery(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra=validation_rules(*EXPORT_RANGE_RULES)
    )

    first: Day = Field(alias="from", description="First local day of the site (included)")
    last: Day = Field(alias="to", description="Last local day of the site (included)")
