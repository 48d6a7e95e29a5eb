"""Field types of the flows and rules APIs as the OpenAPI document states them.

The document states the core rules' own constants (segment syntax, path form, session ids), and
the handlers check input with those rules, so the two cannot drift. The rules' messages stay the
ones clients get: these types only describe, the core functions validate.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import GetJsonSchemaHandler, WithJsonSchema
from pydantic_core import CoreSchema

from core.flows.events import SESSION_ID_PATTERN
from core.flows.paths import MAX_PATH_LENGTH, MAX_RAW_LENGTH, PLAIN_PATH_PATTERN
from core.flows.segments import MAX_SEGMENT_LENGTH, SEGMENT_PATTERN
from service.openapi import runtime_enum


def _configured_segments(app: Any) -> list[str]:
    segments: list[str] = app.state.settings.speculation_segments
    return segments


Segment = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SEGMENT_PATTERN,
            "maxLength": MAX_SEGMENT_LENGTH,
            "description": "Segment '<language>-<device>', one of the deployment's "
            "KERVAN_SPECULATION_SEGMENTS (any other is refused with 422)",
            "examples": ["en-d"],
            # The running app's document lists exactly the segments it serves.
            **runtime_enum("speculation_segments", _configured_segments),
        }
    ),
]

PagePath = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PATH_LENGTH,
            "pattern": PLAIN_PATH_PATTERN,
            "description": "A page path. Also accepted, up to "
            f"{MAX_RAW_LENGTH} characters: any spelling that normalizes to a path of at most "
            f"{MAX_PATH_LENGTH} characters (percent escapes, a query or fragment, which are "
            "dropped, or an absolute http(s) URL on the site's own origin).",
            "examples": ["/en/projects"],
        }
    ),
]

SessionId = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": SESSION_ID_PATTERN, "examples": ["s-1a2b3c4d"]}),
]


class OneOf:
    """Marks a union whose members exclude each other: documented as ``oneOf``, not ``anyOf``."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        schema: dict[str, Any] = handler(core_schema)
        if "anyOf" in schema:
            schema["oneOf"] = schema.pop("anyOf")
        return schema
