"""The edge import format (``POST /flows/edges``): aggregated counts for one segment.

``{"seg", "replace", "edges": [{"from", "to", "count"}]}``, accepted whole or refused whole: the
parser reports every bad field and every bad edge by its index. Paths are normalized, so two
spellings of one edge add up, and an edge from a page to itself is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from core.errors import ValidationFailed
from core.flows.paths import normalize_path
from core.flows.segments import validate_segment
from service.speculation.bodies import array_member
from service.speculation.fields import PagePath, Segment
from service.validation import validation_details

MAX_IMPORT_EDGES = 20_000
MAX_EDGE_COUNT = 10**12
#: An import may be larger than an ordinary JSON body (KERVAN_MAX_BODY_BYTES), up to this.
IMPORT_BODY_BYTES = 8 * 1024 * 1024


class EdgeIn(BaseModel):
    from_: PagePath = Field(alias="from", max_length=2048)
    to: PagePath = Field(max_length=2048)
    count: int = Field(ge=1, le=MAX_EDGE_COUNT)


class EdgesIn(BaseModel):
    """The import body (documentation; ``parse_import`` reads it item by item)."""

    seg: Segment
    replace: bool = Field(default=False, description="Replace the segment's edges")
    edges: list[EdgeIn] = Field(
        max_length=MAX_IMPORT_EDGES,
        description="Edges whose paths normalize to the same pair add up; their total count "
        f"must stay at most {MAX_EDGE_COUNT}. An edge from a page to itself is dropped.",
    )


@dataclass(frozen=True, slots=True)
class EdgeImport:
    seg: str
    replace: bool
    #: ``(from, to) -> count``, normalized, self-loops dropped.
    edges: dict[tuple[str, str], int]


def parse_import(body: Any, segments: Collection[str], origins: Collection[str]) -> EdgeImport:
    """Raises one ``ValidationFailed`` listing every problem of the import."""
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be an object")
    seg_raw = body.get("seg")
    replace = body.get("replace", False)
    errors: list[dict[str, Any]] = []
    try:
        seg = validate_segment(seg_raw if isinstance(seg_raw, str) else "", segments)
    except ValidationFailed as exc:
        errors.append({"field": "body.seg", "message": exc.message})
        seg = ""
    if not isinstance(replace, bool):
        errors.append({"field": "body.replace", "message": "must be a boolean"})
    items = array_member(body, "edges", MAX_IMPORT_EDGES)
    edges: Counter[tuple[str, str]] = Counter()
    for index, item in enumerate(items):
        try:
            edge = EdgeIn.model_validate(item)
        except ValidationError as exc:
            errors.append(
                {
                    "index": index,
                    "message": f"{exc.error_count()} field(s) failed validation",
                    "details": validation_details(exc, f"edges.{index}"),
                }
            )
            continue
        try:
            a = normalize_path(edge.from_, origins)
            b = normalize_path(edge.to, origins)
        except ValidationFailed as exc:
            errors.append({"index": index, "message": exc.message})
            continue
        if a != b:
            edges[(a, b)] += edge.count
    if errors:
        raise ValidationFailed(
            f"{len(errors)} problem(s) in the import; nothing was stored", details=errors
        )
    if any(n > MAX_EDGE_COUNT for n in edges.values()):
        raise ValidationFailed(f"an edge's count exceeds {MAX_EDGE_COUNT}")
    return EdgeImport(seg, replace, dict(edges))
